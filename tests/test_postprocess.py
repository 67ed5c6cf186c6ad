from __future__ import annotations

import pytest

from aixaudit.languages import error_count, get_language, parse
from aixaudit.postprocess import cut_at_stop_words, parses_after_insert, trim_completion


def trim(
    lang: str,
    prefix: str,
    raw: str,
    suffix: str,
    node_type: str,
    *,
    original: str,
    stop_words: tuple[str, ...] = (),
) -> str:
    """trim_completion with the baseline taken from the original file (prefix + span + suffix)."""
    language = get_language(lang)
    baseline = error_count(parse(language, (prefix + original + suffix).encode()))
    return trim_completion(
        raw,
        language=language,
        prefix=prefix,
        suffix=suffix,
        node_type=node_type,
        stop_words=stop_words,
        baseline_errors=baseline,
    )


# --- step 1: stop strings -------------------------------------------------------------------


def test_cut_at_the_earliest_stop_word() -> None:
    assert cut_at_stop_words("a = 1<EOT>b<|end|>", ["<|end|>", "<EOT>", ""]) == "a = 1"
    assert cut_at_stop_words("a = 1", ["<EOT>"]) == "a = 1"
    assert cut_at_stop_words("a = 1", []) == "a = 1"


def test_stop_word_applies_before_syntax_rules() -> None:
    # Without the stop string the whole text would parse (one statement, then a second one).
    got = trim(
        "python",
        "def f(x):\n    ",
        "return x</s>\n    x = 2",
        "\n",
        "return_statement",
        original="return x",
        stop_words=("</s>",),
    )
    assert got == "return x"


def test_blank_completion_is_returned_as_is() -> None:
    assert trim("python", "x = ", "  ", "\n", "integer", original="1") == "  "


# --- step 2a: the first complete syntax unit of the original's type ---------------------------


def test_python_statement_cut_after_the_unit() -> None:
    prefix = "def f(x):\n    y = x + 1\n    "
    got = trim(
        "python",
        prefix,
        "return y\n    z = 3\n",
        "\n\nprint(f(1))\n",
        "return_statement",
        original="return y",
    )
    assert got == "return y"


def test_python_function_body_stops_at_the_dedent() -> None:
    raw = "y = x + 1\n    return y\n\ndef g():\n    return 2\n"
    got = trim(
        "python", "def f(x):\n    ", raw, "\n\nf(1)\n", "block", original="y = x + 1\n    return y"
    )
    assert got == "y = x + 1\n    return y"


def test_java_call_cut_after_its_closing_parenthesis() -> None:
    prefix = "class A { int m(java.util.List<String> list) { int n = "
    got = trim(
        "java",
        prefix,
        "list.size(); int k = 2;",
        "; return n; } }",
        "method_invocation",
        original="list.size()",
    )
    assert got == "list.size()"


def test_javascript_condition_keeps_only_the_parenthesized_expression() -> None:
    prefix = "function f(a) {\n  if "
    suffix = " {\n    return -a;\n  }\n  return 0;\n}\n"
    got = trim(
        "javascript",
        prefix,
        "(a > 0) {\n    return a;\n  }",
        suffix,
        "parenthesized_expression",
        original="(a < 0)",
    )
    assert got == "(a > 0)"


def test_leading_whitespace_is_kept_and_skipped_when_finding_the_unit() -> None:
    got = trim(
        "javascript",
        "function f(a) {\n  ",
        "\n  return a;\n  foo();",
        "\n}\n",
        "return_statement",
        original="return a;",
    )
    assert got == "\n  return a;"


def test_outermost_node_of_the_type_wins() -> None:
    # `foo(a).bar()` is a call whose callee contains the call `foo(a)`; the outer one is taken.
    got = trim("python", "y = ", "foo(a).bar()\nz = 1", "\n", "call", original="foo(a)")
    assert got == "foo(a).bar()"


# --- step 2b: drop trailing lines / cut after brackets until it parses -----------------------


def test_go_trailing_broken_line_is_dropped() -> None:
    prefix = "package main\n\nfunc f(x int) int {\n\ty := 0\n\t"
    # The original was `y = x + 1` (assignment_statement); the completion has no node of the
    # requested type at its start, so the longest prefix by lines that parses is kept.
    got = trim(
        "go",
        prefix,
        "y = x + 1\n\tz := (",
        "\n\treturn y\n}\n",
        "short_var_declaration",
        original="y = x + 1",
    )
    assert got == "y = x + 1"


def test_rust_one_liner_cut_after_a_closing_bracket() -> None:
    prefix = "fn main() {\n    let v = "
    # No line to drop; cuts after ")" right to left: "compute(1, 2))" still has the stray ")",
    # "compute(1, 2)" parses.
    got = trim(
        "rust", prefix, "compute(1, 2)) + 1", ";\n}\n", "macro_invocation", original="compute(1, 2)"
    )
    assert got == "compute(1, 2)"


def test_nothing_parses_keeps_the_completion() -> None:
    got = trim("c", "int f(void) {\n  return ", "((((", ";\n}\n", "number_literal", original="1")
    assert got == "(((("


def test_a_file_that_had_errors_before_is_judged_against_its_baseline() -> None:
    # g() has a stray "@" (2 error nodes already); dropping the broken last line brings the
    # count back to the baseline, which is good enough although the file never parses cleanly.
    suffix = "\n}\n\nint g(void) { return 1 @ 2; }\n"
    got = trim(
        "c", "int f(int x) {\n  return ", "x + 1;\n  foo(", suffix, "call_expression", original="x;"
    )
    assert got == "x + 1;"


# --- step 3: text duplicating the start of the suffix ----------------------------------------


def test_c_duplicate_of_the_next_statement_is_dropped() -> None:
    prefix = "int f(int x) {\n  "
    suffix = "\n  return x;\n}\n"
    # "statements" matches no node type, and the whole completion parses, so step 2 keeps it.
    got = trim("c", prefix, "x += 1;\n  return x;", suffix, "statements", original="x += 1;")
    assert got == "x += 1;"


def test_closing_brace_of_the_completions_own_block_stays() -> None:
    prefix = "void g(int x) {\n  if (x) "
    # The suffix starts with the line "}", so does the completion's end; dropping it would
    # leave the if-block unclosed (more errors), so it stays.
    got = trim(
        "c", prefix, "{\n    x++;\n  }", "\n}\n", "compound_statement", original="{\n    x--;\n  }"
    )
    assert got == "{\n    x++;\n  }"


def test_completion_equal_to_the_suffix_start_is_not_emptied() -> None:
    got = trim(
        "python",
        "def f():\n    x = 1\n    ",
        "x = 1",
        "\n    x = 1\n",
        "statements",
        original="x = 1",
    )
    assert got == "x = 1"


def test_short_overlap_inside_a_line_is_not_a_duplicate() -> None:
    # The completion ends with "b", the suffix starts with "b * 2": 1 char, not a whole line.
    got = trim("python", "v = ", "ab", "b * 2\n", "identifier", original="a")
    assert got == "ab"


def test_overlap_starting_inside_a_word_is_not_a_duplicate() -> None:
    # "tal" ends the completion and starts the suffix, but "total" is one word; dropping it
    # would still parse ("r = a + to" + "tal;"), so only the word rule keeps it.
    got = trim(
        "java",
        "class A { int m(int a, int total, int tal) { int r = ",
        "a + total",
        "tal; return r; } }",
        "binary_expression",
        original="a + ",
    )
    assert got == "a + total"


def test_repeated_call_suffix_is_dropped() -> None:
    # The span was `get(x)` in `get(x)(y)`; the completion ran on into the suffix's "(y)".
    got = trim("python", "v = ", "get(x)(y)", "(y)\n", "statements", original="get(x)")
    assert got == "get(x)"


@pytest.mark.parametrize(
    ("lang", "prefix", "completion", "suffix", "ok"),
    [
        ("python", "def f():\n    return ", "1", "\n", True),
        ("python", "def f():\n    return ", "(1", "\n", False),
        ("java", "class A { int m() { return ", "1", "; } }", True),
        ("java", "class A { int m() { return ", "1 +", "; } }", False),
        ("go", "package p\nfunc f() int { return ", "g()", " }\n", True),
        ("go", "package p\nfunc f() int { return ", "g(", " }\n", False),
    ],
)
def test_parses_after_insert(
    lang: str, prefix: str, completion: str, suffix: str, ok: bool
) -> None:
    language = get_language(lang)
    assert (
        parses_after_insert(
            language=language,
            prefix=prefix,
            completion=completion,
            suffix=suffix,
            baseline_errors=0,
        )
        is ok
    )


def test_parses_after_insert_tolerates_the_baseline() -> None:
    java = get_language("java")
    prefix, suffix = "class A { int m() { return ", "; } }\n}\n"  # the stray "}": 1 error
    assert parses_after_insert(
        language=java, prefix=prefix, completion="1", suffix=suffix, baseline_errors=1
    )
    assert not parses_after_insert(
        language=java, prefix=prefix, completion="1 +", suffix=suffix, baseline_errors=1
    )
