"""Prompts in the model's own format, within a token budget.

A profile is chosen per run and stored with it, so a report always says how its model was asked.
aiXcoder's format (its README and `hf_mini/utils.py`): sentinels carry SentencePiece's space
mark, and a two-line header in the file's own comment syntax names the path and the language:

    SPM: <s>▁<AIX-SPAN-PRE>▁<AIX-SPAN-POST>{suffix}▁<AIX-SPAN-MIDDLE>{header}{prefix}
    PSM: <s>▁<AIX-SPAN-PRE>{header}{prefix}▁<AIX-SPAN-POST>{suffix}▁<AIX-SPAN-MIDDLE>

`l2r` sends only the prefix, for models trained without fill-in-the-middle (the CPU stand-in).

Repository context (fragments of other files, rendered by `aixaudit.context`) goes right before
the header (before the prefix for `l2r`), within its own budget. In PSM and `l2r` order the
points of a file then share the start of their prompts (the context of the `imports` strategy
is the same for all of them), whose cached keys and values the server can reuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .languages import Language
from .tokens import TokenCounter, keep_first_counted, keep_last_counted

BOS = "<s>"
PRE, POST, MIDDLE = "▁<AIX-SPAN-PRE>", "▁<AIX-SPAN-POST>", "▁<AIX-SPAN-MIDDLE>"
AIXCODER_STOP_WORDS = ("</s>", "<AIX-SPAN-PRE>", "<AIX-SPAN-POST>", "<AIX-SPAN-MIDDLE>")


@dataclass(frozen=True)
class ModelProfile:
    name: str
    order: str  # "spm", "psm", or "l2r" (prefix only)
    description: str
    stop_words: tuple[str, ...] = ()

    @property
    def fim(self) -> bool:
        return self.order != "l2r"


PROFILES: dict[str, ModelProfile] = {
    profile.name: profile
    for profile in (
        ModelProfile(
            "aixcoder", "spm", "aiXcoder-7B, suffix-prefix-middle (its README)", AIXCODER_STOP_WORDS
        ),
        ModelProfile(
            "aixcoder-psm",
            "psm",
            "aiXcoder-7B, prefix-suffix-middle (its FIM evaluation harness)",
            AIXCODER_STOP_WORDS,
        ),
        ModelProfile("l2r", "l2r", "left to right: prefix only, for models without FIM"),
    )
}


def get_profile(name: str) -> ModelProfile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ConfigError(f"Unknown model profile {name!r}; choose one of: {known}.") from None


@dataclass(frozen=True)
class Prompt:
    text: str
    prefix: str  # the prefix as sent, after truncation
    suffix: str  # the suffix as sent ("" for l2r)
    tokens: int  # counted with the run's token counter, sentinels excluded
    truncated: bool = False  # the prefix or suffix was cut to fit the budget


def aixcoder_header(language: Language, path: str) -> str:
    """The two comment lines aiXcoder was trained with, in the file's own comment syntax."""
    mark = language.comment
    return (
        f"{mark} the file path is: {path}\n{mark} the code file is written by {language.display}\n"
    )


def build_prompt(
    profile: ModelProfile,
    *,
    language: Language,
    path: str,
    prefix: str,
    suffix: str,
    counter: TokenCounter,
    budget: int,
    context: str = "",
) -> Prompt:
    """Truncate prefix (from the left) and suffix (from the right) to `budget` tokens in all,
    split evenly between them for FIM as aiXcoder's harness does, and render the profile.
    `context` (already within its own budget) is sent as it is, before the file's text."""
    context_tokens = counter.count(context) if context else 0
    if profile.order == "l2r":
        kept, kept_tokens = keep_last_counted(counter, prefix, budget)
        tokens = context_tokens + kept_tokens
        return Prompt(f"{context}{kept}", kept, "", tokens, truncated=kept != prefix)

    header = aixcoder_header(language, path)
    header_tokens = counter.count(header)
    half = max(0, (budget - header_tokens) // 2)
    kept_prefix, prefix_tokens = keep_last_counted(counter, prefix, half)
    kept_suffix, suffix_tokens = keep_first_counted(counter, suffix, half)
    truncated = kept_prefix != prefix or kept_suffix != suffix
    prefix, suffix = kept_prefix, kept_suffix
    if profile.order == "spm":
        text = f"{BOS}{PRE}{POST}{suffix}{MIDDLE}{context}{header}{prefix}"
    else:
        text = f"{BOS}{PRE}{context}{header}{prefix}{POST}{suffix}{MIDDLE}"
    tokens = context_tokens + header_tokens + prefix_tokens + suffix_tokens
    return Prompt(text, prefix, suffix, tokens, truncated=truncated)


# -- budgets that follow the model ---------------------------------------------------------------

# aiXcoder's FIM harness: a 16,384-token context and 512 new tokens; the prompt gets the rest,
# split evenly between prefix and suffix (build_prompt halves it). The CPU stand-in (l2r)
# is SmolLM2-135M: its config's max_position_embeddings.
AIXCODER_CONTEXT, AIXCODER_NEW_TOKENS = 16_384, 512
CPU_MODEL_CONTEXT, CPU_MODEL_NEW_TOKENS = 8_192, 128
NEW_TOKENS_RULE = "min(cap, ceil(reference_tokens * headroom) + margin)"


@dataclass(frozen=True)
class Budgets:
    """A profile's defaults: the model's context, and the most new tokens a point may ask."""

    context: int
    new_tokens_cap: int

    @property
    def prompt(self) -> int:
        return self.context - self.new_tokens_cap


PROFILE_BUDGETS: dict[str, Budgets] = {
    "aixcoder": Budgets(AIXCODER_CONTEXT, AIXCODER_NEW_TOKENS),
    "aixcoder-psm": Budgets(AIXCODER_CONTEXT, AIXCODER_NEW_TOKENS),
    "l2r": Budgets(CPU_MODEL_CONTEXT, CPU_MODEL_NEW_TOKENS),
}


def new_tokens_for(reference_tokens: int, *, cap: int, headroom: float, margin: int) -> int:
    """New tokens one point may ask: room for its reference with headroom, never over `cap`
    (a fixed 32 left two thirds of function bodies impossible to complete exactly)."""
    return max(1, min(cap, math.ceil(reference_tokens * headroom) + margin))
