"""Counting and truncating by tokens, with the model's own tokenizer where we have it.

Budgets are in the model's tokens, so the prompt fits the model's context whatever the text.
Without the model's tokenizer (a production server whose tokenizer is not on this machine)
we fall back to a regex approximation and record its name with the run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from tokenizers import Tokenizer

from .errors import ConfigError


class TokenCounter(Protocol):
    name: str
    exact: bool  # the model's own tokenizer, not an approximation
    sha256: str | None  # of the tokenizer file, where there is one

    def count(self, text: str) -> int: ...

    def starts(self, text: str) -> list[int]:
        """Character offset where each token of `text` starts: one per token `count` counts."""
        ...


class ModelTokenizer:
    """A Hugging Face `tokenizer.json`, loaded with the `tokenizers` library (no torch)."""

    def __init__(self, path: Path) -> None:
        file = tokenizer_file(path)
        if not file.is_file():
            raise ConfigError(f"No tokenizer.json at {path}; set AIXAUDIT_TOKENIZER_DIR.")
        self._path = path
        self._tokenizer = Tokenizer.from_file(str(file))
        self.name = f"tokenizer.json:{file.parent.name}"
        self.exact = True
        self.sha256: str | None = tokenizer_sha256(path)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def starts(self, text: str) -> list[int]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [start for start, _ in encoding.offsets]

    def __reduce__(self) -> tuple[Callable[[Path], ModelTokenizer], tuple[Path]]:
        """Pickled as its path, loaded once per process: answers are scored in worker processes
        with the counter as an argument, and the tokenizer itself pickles to 1.5 MB that took
        ~180 ms of CPU an answer to send."""
        return _shared_model_tokenizer, (self._path,)


@lru_cache(maxsize=4)
def _shared_model_tokenizer(path: Path) -> ModelTokenizer:
    return ModelTokenizer(path)


def tokenizer_file(path: Path) -> Path:
    return path / "tokenizer.json" if path.is_dir() else path


def tokenizer_sha256(path: Path) -> str | None:
    """The sha256 of the tokenizer.json in (or at) `path`, None without one: a server declares
    it, so that a client knows whether its copy counts tokens as the server does."""
    file = tokenizer_file(path)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None


class ApproximateTokenizer:
    """Words, single punctuation marks and runs of whitespace: close to a code BPE's count."""

    name: str = "approx-regex-v1"
    exact: bool = False
    sha256: str | None = None
    _TOKEN = re.compile(r"\w+|[^\w\s]|\s+")

    def count(self, text: str) -> int:
        return sum(1 for _ in self._TOKEN.finditer(text))

    def starts(self, text: str) -> list[int]:
        return [match.start() for match in self._TOKEN.finditer(text)]


def load_token_counter(tokenizer_dir: Path | None) -> TokenCounter:
    return ModelTokenizer(tokenizer_dir) if tokenizer_dir else ApproximateTokenizer()


# keep_last/keep_first tokenize a window of the text, not all of it: encoding a 100 KB prefix to
# keep its last 768 tokens cost ~10 ms a point, most of building a prompt. Tokens far from the
# window's cut edge come out as in the whole text, so the window is grown until it holds
# _WINDOW_MARGIN tokens more than the budget (or the whole text).
# First guess at a window's size in characters a token. With 4, half of the standard library's
# 768-token prefixes needed a second window twice as large (an encode of 3 window sizes in all);
# with 5, almost none do, and the kept text and its count came out the same on 300 points.
_CHARS_PER_TOKEN = 5
_WINDOW_MARGIN = 64


def keep_last(counter: TokenCounter, text: str, budget: int) -> str:
    """The tail of `text` within `budget` tokens, starting at a line start when cut."""
    return _last(counter, text, budget)[0]


def keep_first(counter: TokenCounter, text: str, budget: int) -> str:
    """The head of `text` within `budget` tokens, ending at a line end when cut."""
    return _first(counter, text, budget)[0]


def keep_last_counted(counter: TokenCounter, text: str, budget: int) -> tuple[str, int]:
    """`keep_last` and its token count. A text kept whole was tokenized whole to find that out,
    so it is not encoded again (prompts count what they keep: an encode of every prompt)."""
    return _counted(counter, *_last(counter, text, budget))


def keep_first_counted(counter: TokenCounter, text: str, budget: int) -> tuple[str, int]:
    """`keep_first` and its token count, as `keep_last_counted`."""
    return _counted(counter, *_first(counter, text, budget))


def _counted(counter: TokenCounter, kept: str, tokens: int | None) -> tuple[str, int]:
    return kept, counter.count(kept) if tokens is None else tokens


def _last(counter: TokenCounter, text: str, budget: int) -> tuple[str, int | None]:
    """The kept tail, and its token count when the whole text was tokenized and kept."""
    if budget <= 0:
        return "", 0
    size = (budget + _WINDOW_MARGIN) * _CHARS_PER_TOKEN
    while True:
        head = max(0, len(text) - size)
        starts = counter.starts(text[head:])
        if head == 0 or len(starts) > budget + _WINDOW_MARGIN:
            break
        size *= 2
    if len(starts) <= budget:
        return text, len(starts)  # the loop only stops under the budget with head == 0
    cut = head + starts[len(starts) - budget]
    line_start = text.find("\n", cut)
    return (text[line_start + 1 :] if line_start != -1 else text[cut:]), None


def _first(counter: TokenCounter, text: str, budget: int) -> tuple[str, int | None]:
    """The kept head, and its token count when the whole text was tokenized and kept."""
    if budget <= 0:
        return "", 0
    size = (budget + _WINDOW_MARGIN) * _CHARS_PER_TOKEN
    while True:
        starts = counter.starts(text[:size])
        if size >= len(text) or len(starts) > budget + _WINDOW_MARGIN:
            break
        size *= 2
    if len(starts) <= budget:
        return text, len(starts)  # the loop only stops under the budget with the whole text
    cut = starts[budget]
    line_end = text.rfind("\n", 0, cut)
    return (text[: line_end + 1] if line_end != -1 else text[:cut]), None
