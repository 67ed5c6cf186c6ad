from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aixaudit.audit import PointWork, _result
from aixaudit.inference import Completion
from aixaudit.languages import get_language, language_for_path, parse
from aixaudit.postprocess import (
    SAFIM_COMMIT,
    SAFIM_REPO,
    SafimNotApplicable,
    cut_at_stop_words,
    parses_after_insert,
    safim_trim,
    safim_truncate_api_call,
    safim_truncate_control,
    trim_completion,
)
from aixaudit.prompts import Prompt
from aixaudit.scoring import METRICS, AcceptanceRule, score
from aixaudit.spans import find_spans

# Outputs of SAFIM's own prompt_utils.py run on these cases (see the file's "source" and "how").
SAFIM_FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "safim_truncation.json").read_text(encoding="utf-8")
)
CASES = {case["name"]: case for case in SAFIM_FIXTURE["cases"]}

# What our rule keeps for each fixture case; "" is the empty suggestion (nothing fits).
OURS = {
    "python_dedent_new_def": "z = y * 2\n    w = z - 1",
    "python_body_runs_into_module_code": "return x + 2",
    "python_condition_with_colon_and_body": "a > 0",
    "python_call_then_next_line": "os.path.join(a, c)",
    "python_nothing_parses": "",
    "python_error_elsewhere": "y = x\n    z = y + 1",
    "python_token_limit_mid_word": "n = len(buf)",
    "java_statements_close_method": "int y = x + 1;\n    y *= 3;",
    "java_condition_with_body": "a > 0",
    "java_call_then_statement": "list.size()",
    "java_arguments_extra_paren": "(a, b)",
    "java_function_body_then_new_method": "{\n    return x + 1;\n  }",
    "javascript_condition_with_body": "a > 0",
    "javascript_statements_close_function": "const b = a + 1;\n  const c = b * 2;",
    "javascript_call_nested": "foo(bar(1), 2)",
    # A mid-word cut inside a declaration still parses: no syntax rule can tell (a limit).
    "typescript_token_limit_mid_word": "const b: number = a + 1;\n  const c = b.toFix",
    "typescript_while_condition_with_body": "a > 10",
    "go_token_limit_mid_word": "binary.BigEndian.PutUint32(b[0:], x)",
    "go_condition_with_body": "x < 0",
    "go_call_then_next_call": 'fmt.Println("hello")',
    "go_block_body_then_new_func": "{\n\t\tx -= i\n\t}",
    "rust_close_fn_open_test": "let t = s * 2;\n    let u = t + 1;",
    "rust_condition_with_body": "x > 0",
    "rust_call_extra_paren": "compute(1, 2)",
    "rust_function_body_then_test": "{\n    2\n}",
    "c_statements_close_function": "x += 1;\n  x *= 2;",
    "c_condition_with_body": "x > 0 && (x < 10)",
    "c_error_elsewhere": "x += 1;\n  x *= 3;",
    "c_missing_semicolon": "",
    "cpp_statements_close_function": "v.push_back(1);\n  v.push_back(3);\n  return v.size();",
    "cpp_for_condition_runs_on": "i < n",
    "cpp_call_then_close": "std::sqrt(x * x) + 1",
}


def ours(case: dict[str, Any], completion: str | None = None) -> str:
    return trim_completion(
        case["completion"] if completion is None else completion,
        language=get_language(case["language"]),
        kind=case["kind"],
        prefix=case["prefix"],
        original=case["original"],
        suffix=case["suffix"],
    )


def parses(case: dict[str, Any], completion: str) -> bool:
    return parses_after_insert(
        language=get_language(case["language"]),
        prefix=case["prefix"],
        original=case["original"],
        completion=completion,
        suffix=case["suffix"],
    )


# --- SAFIM, reproduced ------------------------------------------------------------------------


def test_the_fixture_names_its_source_and_covers_every_language_and_rule() -> None:
    source = SAFIM_FIXTURE["source"]
    assert (source["repo"], source["commit"]) == (SAFIM_REPO, SAFIM_COMMIT)
    assert "prompt_utils.py" in source["files"]
    assert {case["language"] for case in CASES.values()} == {
        "python", "java", "javascript", "typescript", "go", "rust", "c", "cpp",
    }  # fmt: skip
    rules = {case["rule"] for case in CASES.values()}
    assert rules == {"truncate_line_until_block", "truncate_control", "truncate_api_call"}
    assert set(OURS) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_safim_trim_reproduces_safims_own_output(name: str) -> None:
    case = CASES[name]
    language = get_language(case["language"])
    args = {"language": language, "kind": case["kind"], "prefix": case["prefix"]}
    if "expected_error" in case:  # SAFIM's assertion that the file without the span parses
        with pytest.raises(SafimNotApplicable):
            safim_trim(case["completion"], suffix=case["suffix"], **args)
    else:
        assert safim_trim(case["completion"], suffix=case["suffix"], **args) == case["expected"]


def test_safim_control_and_api_cuts() -> None:
    java, python = get_language("java"), get_language("python")
    assert safim_truncate_control("f(a)) {\n  x();\n}", language=java) == "f(a)"
    assert safim_truncate_control("a > 0", language=java) == "a > 0"
    assert safim_truncate_control("\n  a > 0:\n    b", language=python) == "  a > 0:"
    assert safim_truncate_control("\n \n", language=python) == ""
    assert safim_truncate_api_call("f(g(1), 2); h()") == "f(g(1), 2)"
    assert safim_truncate_api_call("x) + y") == "x)"
    assert safim_truncate_api_call("f(1") == "f(1"


# --- ours: cut by the span's kind ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_our_trim_on_every_fixture_case(name: str) -> None:
    case = CASES[name]
    got = ours(case)
    assert got == OURS[name]
    assert case["completion"].startswith(got)
    assert got == "" or parses(case, got)


def test_a_condition_followed_by_its_body_ends_at_the_header() -> None:
    # Go and Rust have no parentheses to stop at, so SAFIM keeps the body and the next `if`.
    for name in ("go_condition_with_body", "rust_condition_with_body"):
        case = CASES[name]
        assert case["expected"] == case["completion"]
        assert not parses(case, case["expected"])
        assert ours(case) == OURS[name]
    # A different expression than the original's type (a call in the original here).
    case = CASES["java_condition_with_body"] | {"original": "list.isEmpty()"}
    assert ours(case) == "a > 0"


def test_statements_cut_mid_word_by_the_token_limit_drop_the_broken_statement() -> None:
    case = CASES["go_token_limit_mid_word"]
    assert case["expected"].endswith("PutUint1")  # SAFIM keeps it: it parses
    assert parses(case, case["completion"])
    assert ours(case) == "binary.BigEndian.PutUint32(b[0:], x)"
    assert ours(CASES["python_token_limit_mid_word"]) == "n = len(buf)"


def test_closing_the_function_and_opening_a_test_is_cut_before_it() -> None:
    case = CASES["rust_close_fn_open_test"]
    assert "#[test]" in case["expected"]  # SAFIM's sequence check is fooled
    assert ours(case) == "let t = s * 2;\n    let u = t + 1;"


def test_dedent_and_a_new_def_is_cut_before_it() -> None:
    case = CASES["python_dedent_new_def"]
    assert "def g()" in case["expected"]
    assert ours(case) == "z = y * 2\n    w = z - 1"


def test_nothing_fits_gives_the_empty_suggestion() -> None:
    assert ours(CASES["python_nothing_parses"]) == ""
    assert ours(CASES["c_missing_semicolon"]) == ""  # SAFIM keeps it: it ignores MISSING nodes
    assert CASES["c_missing_semicolon"]["expected"] == "x += 1"
    assert ours(CASES["python_dedent_new_def"], completion="  \n") == ""


def test_an_expression_kind_keeps_one_node() -> None:
    # The original call is a whole statement; a second statement is no part of it.
    assert ours(CASES["go_call_then_next_call"]) == 'fmt.Println("hello")'
    # An expression that extends the call is one node, so it stays (SAFIM cuts at the ")").
    case = CASES["cpp_call_then_close"]
    assert (case["expected"], ours(case)) == ("std::sqrt(x * x)", "std::sqrt(x * x) + 1")


def test_a_name_is_a_complete_tail_expression_in_rust() -> None:
    prefix = "fn f(x: i32) -> i32 {\n    let y = x + 1;\n    "
    case = {"language": "rust", "kind": "statement", "prefix": prefix, "original": "y"}
    assert ours(case | {"suffix": "\n}\n", "completion": "y\n}\n"}) == "y"


def test_a_file_with_an_error_elsewhere_is_judged_in_the_enclosing_function() -> None:
    case = CASES["c_error_elsewhere"]
    assert case["expected"] == ""  # SAFIM: no candidate parses, as the whole file never does
    assert ours(case) == "x += 1;\n  x *= 3;"
    assert ours(CASES["python_error_elsewhere"]) == "y = x\n    z = y + 1"


# --- stop strings and suffix duplicates -------------------------------------------------------


def test_cut_at_the_earliest_stop_word() -> None:
    assert cut_at_stop_words("a = 1<EOT>b<|end|>", ["<|end|>", "<EOT>", ""]) == "a = 1"
    assert cut_at_stop_words("a = 1", ["<EOT>"]) == "a = 1"
    assert cut_at_stop_words("a = 1", []) == "a = 1"


def test_stop_word_applies_before_syntax_rules() -> None:
    got = trim_completion(
        "return x</s>\n    x = 2",
        language=get_language("python"),
        kind="statement",
        prefix="def f(x):\n    ",
        original="return x",
        suffix="\n",
        stop_words=("</s>",),
    )
    assert got == "return x"


def _py(prefix: str, raw: str, suffix: str, kind: str, original: str) -> str:
    case = {"language": "python", "kind": kind, "prefix": prefix, "original": original}
    return ours(case | {"suffix": suffix, "completion": raw})


def test_duplicate_of_the_next_statement_is_dropped() -> None:
    case = CASES["c_statements_close_function"]
    assert ours(case, completion="x += 1;\n  return x;") == "x += 1;"


def test_closing_brace_of_the_completions_own_block_stays() -> None:
    case = {"language": "c", "kind": "block_body", "prefix": "void g(int x) {\n  if (x) "}
    case |= {"original": "{\n    x--;\n  }", "suffix": "\n}\n"}
    assert ours(case, completion="{\n    x++;\n  }") == "{\n    x++;\n  }"


def test_completion_equal_to_the_suffix_start_is_not_emptied() -> None:
    got = _py("def f():\n    x = 1\n    ", "x = 1", "\n    x = 1\n", "statements", "x = 1")
    assert got == "x = 1"


def test_overlap_starting_inside_a_word_is_not_a_duplicate() -> None:
    # "tal" ends the completion and starts the suffix, but "total" is one word; dropping it
    # would still parse ("x = to"), so only the word rule keeps it.
    got = _py("def f():\n    ", "x = total", "\n    tal = 2\n", "statements", "x = 1")
    assert got == "x = total"


# --- "parses" -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "prefix", "original", "suffix", "good", "bad"),
    [
        ("python", "def f():\n    return ", "1", "\n", "2", "(1"),
        ("java", "class A { int m() { return ", "1", "; } }", "2", "1 +"),
        ("javascript", "function f() { return ", "1", "; }\n", "g(2)", "g(2"),
        ("typescript", "function f(): number { return ", "1", "; }\n", "g(2)", "g(2"),
        ("go", "package p\nfunc f() int { return ", "1", " }\n", "g()", "g("),
        ("rust", "fn f() -> i32 { ", "1", " }\n", "g(2)", "g(2"),
        ("c", "int f(void) { return ", "1", "; }\n", "g(2)", "g(2"),
        ("cpp", "int f() { return ", "1", "; }\n", "g(2)", "g(2"),
    ],
)
def test_parses_in_every_language(
    lang: str, prefix: str, original: str, suffix: str, good: str, bad: str
) -> None:
    case = {"language": lang, "prefix": prefix, "original": original, "suffix": suffix}
    assert parses(case, good)
    assert not parses(case, bad)
    assert not parses(case, "  ")


@pytest.mark.parametrize(
    "name",
    [
        "python_dedent_new_def",
        "java_statements_close_method",
        "javascript_statements_close_function",
        "rust_close_fn_open_test",
        "c_statements_close_function",
        "cpp_statements_close_function",
        "java_function_body_then_new_method",
        "rust_function_body_then_test",
    ],
)
def test_closing_the_scope_and_opening_a_definition_does_not_parse(name: str) -> None:
    case = CASES[name]
    language = get_language(case["language"])
    # The whole file has no error (SAFIM's first test), and yet the structure changed.
    source = case["prefix"] + case["completion"] + case["suffix"]
    assert not parse(language, source.encode()).root_node.has_error
    assert not parses(case, case["completion"])


def test_go_new_function_after_a_block_does_not_parse() -> None:
    case = CASES["go_block_body_then_new_func"]
    assert not parses(case, case["completion"])


def test_a_new_error_replacing_an_old_one_does_not_parse() -> None:
    # g() already has an error; v1 counted errors, so one new error for one removed passed.
    prefix = "int f(int x) {\n  "
    suffix = "\n  return x;\n}\n\nint g(void) { return 1 @ 2; }\n"
    case = {"language": "c", "prefix": prefix, "original": "x += 1;", "suffix": suffix}
    assert parses(case, "x -= 2;")
    assert not parses(case, "x -= (2;")
    # The error elsewhere, fixed by nothing the completion does, does not count against it.
    broken = case | {"suffix": "\n  return x;\n}\n\nint g(void) { return 1 @ 2 @ 3; }\n"}
    assert parses(broken, "x -= 2;")


def test_python_file_with_a_broken_function_elsewhere() -> None:
    case = CASES["python_error_elsewhere"]
    assert parses(case, "y = x\n    z = y + 1")
    assert not parses(case, "y = x\n    z = (y")
    assert not parses(case, "y = x\n\ndef h():\n    z = 1")


def test_parses_metric_is_version_2_and_cites_safim() -> None:
    metric = METRICS["parses_after_insert"]
    assert metric.version == 2
    assert SAFIM_REPO in metric.definition and SAFIM_COMMIT in metric.definition


def test_an_empty_suggestion_scores_as_a_miss() -> None:
    case = CASES["python_nothing_parses"]
    text = ours(case)
    language = get_language(case["language"])
    scores = score(text, case["original"], language=language, parses=parses(case, text))
    assert text == "" and scores["parses_after_insert"] == 0.0
    assert scores["exact_match"] == 0.0 and scores["es_rapidfuzz"] == 0.0
    assert not AcceptanceRule().accepts(scores)


def test_an_empty_suggestion_is_stored_as_a_miss_beside_its_raw_text() -> None:
    case = CASES["c_missing_semicolon"]
    work = PointWork(
        1, 1, get_language("c"), case["kind"], case["original"], case["prefix"], case["suffix"],
        Prompt(text="", prefix=case["prefix"], suffix=case["suffix"], tokens=1), 32,
    )  # fmt: skip
    answer = Completion(key="1", text=case["completion"], error=None, latency_ms=1.0, attempts=1)
    row = _result(work, answer, AcceptanceRule(), stop_words=())
    assert (row["raw_text"], row["text"]) == ("x += 1", "")
    assert row["accepted"] is False and row["scores"]["parses_after_insert"] == 0.0
    assert (row["lines_suggested"], row["chars_suggested"]) == (0, 0)


POLYGLOT = Path(__file__).parent / "fixtures" / "polyglot"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in POLYGLOT.rglob("*") if p.is_file() and language_for_path(str(p)) and
           "node_modules" not in p.parts),
    ids=lambda p: p.name,
)  # fmt: skip
def test_every_original_fits_its_own_span_and_is_kept_whole(path: Path) -> None:
    language = language_for_path(str(path))
    assert language is not None
    source = path.read_bytes()
    spans = find_spans(language, source)
    assert spans
    for span in spans:
        original = span.text_in(source)
        case = {"language": language.name, "kind": span.kind, "original": original}
        case |= {
            "prefix": source[: span.start_byte].decode(),
            "suffix": source[span.end_byte :].decode(),
        }
        assert parses(case, original), span
        assert ours(case, completion=original) == original, span


def test_a_span_an_error_node_wraps_is_judged_against_that_error() -> None:
    # tree-sitter-c wraps a macro call in an initializer list in an ERROR node.
    prefix = "static PyTypeObject T = {\n    "
    suffix = '\n    "name",\n};\n'
    case = {"language": "c", "kind": "call", "original": "PyVarObject_HEAD_INIT(NULL, 0)"}
    case |= {"prefix": prefix, "suffix": suffix}
    assert parses(case, "PyVarObject_HEAD_INIT(NULL, 1)")
    assert not parses(case, "PyVarObject_HEAD_INIT(NULL, 1")


def test_an_expression_ending_like_the_suffix_starts_is_kept() -> None:
    case = {"language": "python", "kind": "call", "original": "v.get(0)"}
    case |= {"prefix": "def f(v):\n    return ", "suffix": ".get(0)\n"}
    assert ours(case, completion="v.get(0)") == "v.get(0)"
