"""Repository context for prompts: an index of the audited repository (imports resolved,
definition signatures, BM25-ranked windows of lines) and the strategies that pick fragments of
other files to put before a point's prompt, rendered the way CrossCodeEval does."""

from .index import IndexedFile as IndexedFile
from .index import RepoIndex as RepoIndex
from .index import build_index as build_index
from .render import render_context as render_context
from .retrieval import ContextStrategy as ContextStrategy
from .retrieval import Fragment as Fragment
from .retrieval import retrieve as retrieve
from .stored import run_index as run_index
