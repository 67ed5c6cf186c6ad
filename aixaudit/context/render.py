"""Fragments as a prompt header in the file's comment syntax, CrossCodeEval's way:

    # Here are some relevant code fragments from other files of the repo:
    # the below code fragment can be found in:
    # pkg/util.py
    # def helper(x):
    #     ...

Whole fragments are kept in order while they fit the context budget; the first that does not
is cut at a line end (the context is right-truncated) and the rest left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from aixaudit.languages import Language
from aixaudit.tokens import TokenCounter, keep_first

from .retrieval import Fragment

INTRO = "Here are some relevant code fragments from other files of the repo:"
FOUND_IN = "the below code fragment can be found in:"
MIN_CUT_TOKENS = 16  # a cut fragment shorter than this tells the model nothing


def render_context(
    fragments: Sequence[Fragment], *, language: Language, counter: TokenCounter, budget: int
) -> str:
    """The commented header for `fragments` within `budget` tokens ("" when none fits)."""
    mark = language.comment
    intro = f"{mark} {INTRO}\n"
    left = budget - counter.count(intro)
    blocks: list[str] = []
    for fragment in fragments:
        block = _commented(mark, f"{FOUND_IN}\n{fragment.path}\n{fragment.text}")
        cost = counter.count(block)
        if cost > left:
            if left >= MIN_CUT_TOKENS:
                cut = keep_first(counter, block, left)
                blocks += [cut] if cut.count("\n") > 2 else []  # more than the path lines
            break
        blocks.append(block)
        left -= cost
    return intro + "".join(blocks) if blocks else ""


def _commented(mark: str, text: str) -> str:
    return "".join(f"{mark} {line}".rstrip() + "\n" for line in text.split("\n"))
