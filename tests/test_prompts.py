"""Prompt formats against the reference strings of aiXcoder's README and harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aixaudit.audit import AuditOptions
from aixaudit.errors import ConfigError
from aixaudit.languages import get_language
from aixaudit.prompts import PROFILE_BUDGETS, build_prompt, get_profile, new_tokens_for
from aixaudit.tokens import ApproximateTokenizer

COUNTER = ApproximateTokenizer()
PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"


def test_aixcoder_spm_matches_the_readme_format() -> None:
    prompt = build_prompt(
        get_profile("aixcoder"),
        language=get_language("python"),
        path="src/calc.py",
        prefix=PREFIX,
        suffix=SUFFIX,
        counter=COUNTER,
        budget=1000,
    )
    # aiXcoder README: <s>▁<AIX-SPAN-PRE>▁<AIX-SPAN-POST>{suffix}▁<AIX-SPAN-MIDDLE>{header}{prefix}
    assert prompt.text == (
        "<s>▁<AIX-SPAN-PRE>▁<AIX-SPAN-POST>\n\nprint(add(1, 2))\n▁<AIX-SPAN-MIDDLE>"
        "# the file path is: src/calc.py\n"
        "# the code file is written by Python\n"
        "def add(a, b):\n    "
    )


def test_aixcoder_psm_uses_the_harness_order_and_the_files_comment_syntax() -> None:
    prompt = build_prompt(
        get_profile("aixcoder-psm"),
        language=get_language("cpp"),
        path="a/b.cc",
        prefix="int f() {\n  ",
        suffix="\n}\n",
        counter=COUNTER,
        budget=1000,
    )
    assert prompt.text == (
        "<s>▁<AIX-SPAN-PRE>// the file path is: a/b.cc\n"
        "// the code file is written by C++\n"
        "int f() {\n  ▁<AIX-SPAN-POST>\n}\n▁<AIX-SPAN-MIDDLE>"
    )


def test_l2r_sends_only_the_prefix() -> None:
    prompt = build_prompt(
        get_profile("l2r"),
        language=get_language("python"),
        path="x.py",
        prefix=PREFIX,
        suffix=SUFFIX,
        counter=COUNTER,
        budget=1000,
    )
    assert (prompt.text, prompt.suffix) == (PREFIX, "")


def test_budget_truncates_prefix_from_the_left_and_suffix_from_the_right() -> None:
    prefix = "".join(f"line{i} = {i}\n" for i in range(100))
    suffix = "".join(f"tail{i} = {i}\n" for i in range(100))
    prompt = build_prompt(
        get_profile("aixcoder"),
        language=get_language("python"),
        path="x.py",
        prefix=prefix,
        suffix=suffix,
        counter=COUNTER,
        budget=60,
    )
    # aiXcoder's harness splits the budget left after the header evenly between the two sides.
    header_tokens = COUNTER.count(
        "# the file path is: x.py\n# the code file is written by Python\n"
    )
    half = (60 - header_tokens) // 2
    assert COUNTER.count(prompt.prefix) <= half
    assert COUNTER.count(prompt.suffix) <= half
    assert prompt.prefix.endswith("line99 = 99\n") and prefix.endswith(prompt.prefix)
    assert prompt.suffix.startswith("tail0 = 0\n") and suffix.startswith(prompt.suffix)
    # cut at line boundaries: whole lines only
    assert prompt.prefix.startswith("line") and prompt.suffix.endswith("\n")
    assert prompt.tokens <= 60
    assert prompt.truncated


def test_a_prompt_that_fits_is_not_marked_truncated() -> None:
    for profile in ("aixcoder", "l2r"):
        prompt = build_prompt(
            get_profile(profile), language=get_language("python"), path="x.py",
            prefix=PREFIX, suffix="    return 1\n", counter=COUNTER, budget=1000,
        )  # fmt: skip
        assert not prompt.truncated


def test_budgets_follow_the_profile_unless_given() -> None:
    aixcoder = AuditOptions(profile="aixcoder").with_budgets()
    # aiXcoder's harness: 16,384-token context, 512 new tokens, the rest split between sides.
    assert (aixcoder.max_new_tokens, aixcoder.prompt_budget) == (512, 16_384 - 512)
    l2r = AuditOptions(profile="l2r").with_budgets()
    assert (l2r.max_new_tokens, l2r.prompt_budget) == (128, 8_192 - 128)
    given = AuditOptions(profile="aixcoder", max_new_tokens=64, prompt_budget=900).with_budgets()
    assert (given.max_new_tokens, given.prompt_budget) == (64, 900)


def test_the_l2r_context_is_the_cpu_models(cpu_model_dir: Path) -> None:
    config = json.loads((cpu_model_dir / "config.json").read_text())
    assert PROFILE_BUDGETS["l2r"].context == config["max_position_embeddings"]


@pytest.mark.parametrize(
    ("reference", "cap", "asked"),
    [(0, 512, 8), (10, 512, 23), (40, 512, 68), (400, 512, 512), (40, 32, 32)],
)
def test_new_tokens_leave_headroom_over_the_reference_and_stop_at_the_cap(
    reference: int, cap: int, asked: int
) -> None:
    assert new_tokens_for(reference, cap=cap, headroom=1.5, margin=8) == asked
    options = AuditOptions(max_new_tokens=cap)
    assert options.new_tokens_for(reference) == asked
    # A reference longer than 32 tokens could never come back whole under the old fixed 32.
    assert options.new_tokens_for(reference) >= min(cap, reference)


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="Unknown model profile 'gpt'"):
        get_profile("gpt")
