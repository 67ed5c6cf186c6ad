from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from aixaudit.errors import ConfigError
from aixaudit.languages import get_language
from aixaudit.scoring import (
    METRICS,
    AcceptanceRule,
    Metric,
    accepted_lines_chars,
    bleu_aixcoder,
    fuzzywuzzy_ratio,
    get_metric,
    identifiers,
    metric,
    score,
    suggested_lines_chars,
    tokens_13a,
)

# Values the reference harnesses' own code produced on these cases (how: the file's run_with).
REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "reference_metrics.json").read_text(encoding="utf-8")
)
CASES = {case["id"]: case for case in REFERENCE["cases"]}


def s(pred: str, ref: str, *, lang: str = "python", parses: bool = True) -> dict[str, float]:
    return score(pred, ref, language=get_language(lang), parses=parses)


def scored(case_id: str) -> dict[str, float]:
    case = CASES[case_id]
    return s(case["prediction"], case["reference"], lang=case["language"])


# --- registry -------------------------------------------------------------------------------


def test_registry_contents() -> None:
    assert list(METRICS) == [
        "exact_match",
        "exact_match_cceval",
        "exact_match_repobench",
        "es_cceval",
        "es_repobench",
        "es_longbench",
        "es_rapidfuzz",
        "es_levenshtein",
        "identifier_em",
        "identifier_f1",
        "bleu4_aixcoder",
        "parses_after_insert",
        "length_pred",
        "length_ref",
    ]
    changed = {"identifier_em", "identifier_f1", "parses_after_insert"}  # new definitions in v2
    for name, m in METRICS.items():
        assert m.name == name and m.version == (2 if name in changed else 1)
        assert len(m.definition) > 20
    assert [n for n, m in METRICS.items() if not m.higher_is_better] == [
        "length_pred",
        "length_ref",
    ]
    assert set(s("a", "b")) == set(METRICS)


def test_every_metric_named_after_a_harness_cites_its_file_and_commit() -> None:
    for name, reference in REFERENCE["references"].items():
        if reference["commit"] is None:  # es_rapidfuzz: a library, not a harness
            continue
        for metric_name in ("length_pred", "length_ref") if name == "length_pred_ref" else (name,):
            definition = METRICS[metric_name].definition
            assert reference["repository"] in definition, metric_name
            assert reference["file"] in definition, metric_name
            assert reference["commit"] in definition, metric_name


def test_registering_a_name_twice_fails_and_keeps_the_first() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        metric("es_rapidfuzz", version=2, definition="other")(lambda pair: 0.0)
    assert METRICS["es_rapidfuzz"].version == 1


def test_get_metric_unknown_name_is_a_config_error() -> None:
    assert get_metric("es_cceval") == METRICS["es_cceval"]
    assert isinstance(get_metric("es_cceval"), Metric)
    with pytest.raises(ConfigError, match=r"Unknown metric 'bleu'; known metrics: exact_match"):
        get_metric("bleu")


# --- metrics against the reference harnesses' outputs ---------------------------------------


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda case: case["id"])
def test_metrics_equal_the_reference_code(case: dict[str, Any]) -> None:
    """Every value the harness's code produced, exactly (same floats, not approximately)."""
    assert len(REFERENCE["cases"]) >= 30
    lang = get_language(case["language"])
    scores = score(case["prediction"], case["reference"], language=lang, parses=True)
    assert {name: scores[name] for name in case["expected"]} == case["expected"]
    assert identifiers(case["prediction"], lang) == case["identifiers"]["prediction"]
    assert identifiers(case["reference"], lang) == case["identifiers"]["reference"]
    assert tokens_13a(case["prediction"].strip()) == case["tokens_13a"]["prediction"]
    assert tokens_13a(case["reference"].strip()) == case["tokens_13a"]["reference"]


def test_a_reference_without_13a_tokens_scores_0_where_the_harness_raises() -> None:
    # aiXcoder's compute_bleu divides by the reference's token count: "<skipped>" has none.
    assert CASES["skipped_ref"]["reference_raises"] == {"bleu4_aixcoder": "ZeroDivisionError"}
    assert scored("skipped_ref")["bleu4_aixcoder"] == 0.0
    assert bleu_aixcoder(["x"], []) == bleu_aixcoder([], ["x"]) == 0.0


def test_issue_290_character_pair_rapidfuzz_is_not_the_harness() -> None:
    case = CASES["long_autojunk"]
    assert len(case["reference"]) == 290 and case["reference"].count("\n") == 4
    scores = scored("long_autojunk")
    # difflib's autojunk drops the reference's common characters: the harnesses see 0.83.
    assert scores["es_cceval"] == scores["es_repobench"] == case["expected"]["es_cceval"] == 0.83
    assert scores["es_rapidfuzz"] == pytest.approx(0.9914, abs=1e-4)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("abcd", "abce", 0.75),  # difflib ratio 2*3/8
        ("kitten", "sitting", 0.62),  # 2*4/13 = 61.5 -> 62
        ("", "", 1.0),  # equal, even both empty
        ("x", "", 0.0),  # one side empty
        ("ab", "ba", 0.5),
    ],
)
def test_fuzzywuzzy_ratio(pred: str, ref: str, expected: float) -> None:
    assert fuzzywuzzy_ratio(pred, ref) == expected


def test_es_longbench_takes_the_first_line_without_comment_markers() -> None:
    # The first line holds "#" (in a string): skipped; the second is compared, not stripped.
    assert s('c = "#fff"\nx = 1', "x = 1")["es_longbench"] == 1.0
    assert s("# only a comment", "x = 1")["es_longbench"] == 0.0  # no line left: ""
    assert s("x = 1", "  x = 1")["es_longbench"] == 0.83  # not stripped: 2*5/12


def test_es_cceval_removes_comments_and_strips() -> None:
    assert s("x = 1  # one\n", "x = 1")["es_cceval"] == 1.0
    assert s("x = 1  # one\n", "x = 1")["es_repobench"] < 1.0


def test_exact_matches_of_the_three_harnesses() -> None:
    both = s("a  b\n", "a b")
    assert (both["exact_match"], both["exact_match_repobench"]) == (0.0, 1.0)  # split()
    commented = s("x = f(a)  // note\n\n", "x = f(a)", lang="javascript")
    assert (commented["exact_match"], commented["exact_match_cceval"]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("abcd", "abce", 0.75),  # LCS "abc" = 3; 2*3 / (4+4) = 0.75
        (" abcd\n", "abce", 0.75),  # stripped first
        ("ab", "ba", 0.5),  # LCS 1; 2*1 / 4
        ("abc", "", 0.0),  # 0 / 3
        ("", "", 1.0),  # rapidfuzz: two empty strings are identical
    ],
)
def test_es_rapidfuzz(pred: str, ref: str, expected: float) -> None:
    assert s(pred, ref)["es_rapidfuzz"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("kitten", "sitting", 4 / 7),  # k->s, e->i, +g: distance 3; 1 - 3/7
        ("ab", "ba", 0.0),  # two substitutions: 1 - 2/2
        ("", "", 1.0),  # defined
        ("  x\n", "x", 1.0),  # stripped first
    ],
)
def test_es_levenshtein(pred: str, ref: str, expected: float) -> None:
    assert s(pred, ref)["es_levenshtein"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("lang", "code", "expected"),
    [
        # The issue's cases: CrossCodeEval cuts at "#" (a comment to it, even in a string) and
        # drops string literals; "0x1F" is one word that starts with a digit.
        ("go", 'fmt.Sprintf("%#v (%v)", err)', ["fmt", "Sprintf"]),
        ("go", 'fmt.Sprintf("%v (%v)", err)', ["fmt", "Sprintf", "err"]),
        ("c", "mask = 0x1F & flags;", ["mask", "flags"]),
        ("javascript", 'console.log("a\\nb", x) // c', ["console", "log", "x"]),
        # Keyword lists are the harness's: Python keeps True/False, TypeScript number/null.
        ("python", "if x is None: return True", ["x", "True"]),
        ("typescript", "let n: number = null;", ["n", "number", "null"]),
        ("rust", "let v: Vec<i32> = compute(1, 2);", ["v", "Vec", "i32", "compute"]),
    ],
)
def test_identifiers(lang: str, code: str, expected: list[str]) -> None:
    assert identifiers(code, get_language(lang)) == expected


def test_a_comment_only_suggestion_gets_identifier_f1_0() -> None:
    scores = s("# TODO: return the count", "return 1")
    # CrossCodeEval: [] == [] is an identifier exact match, but F1 of two empty sets is 0.
    assert (scores["identifier_em"], scores["identifier_f1"]) == (1.0, 0.0)
    assert scores["es_cceval"] == 0.0  # the comment is removed: nothing left


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("a b c d", "a b c d e", math.exp(1 - 5 / 4)),  # all precisions 1; brevity penalty
        ("x y", "x", 0.5),  # order 1 for a one-token reference: 1 of 2 unigrams, no penalty
        ("a b", "b a", 0.0),  # order 2: no bigram in common, no smoothing
    ],
)
def test_bleu_aixcoder(pred: str, ref: str, expected: float) -> None:
    assert bleu_aixcoder(pred.split(), ref.split()) == pytest.approx(expected)


def test_bleu4_aixcoder_edge_rules() -> None:
    assert s(" x = 1 ", "x = 1")["bleu4_aixcoder"] == 1.0  # exact match after strip
    assert s("", "x = 1")["bleu4_aixcoder"] == s("x", " ")["bleu4_aixcoder"] == 0.0


@pytest.mark.parametrize("name", ["issue_10_2_100_100", "stripped"])
def test_length_means_are_aixcoders_length_pred_ref(name: str) -> None:
    """Per-suggestion lengths; their means are aiXcoder's Length(Pred/Ref) pair (55 / 51 for
    the issue's (10, 2), (100, 100), where a mean of per-item ratios would give 3.0)."""
    lengths = REFERENCE["lengths"][name]
    scores = [s(pred, ref) for pred, ref in lengths["items"]]
    mean = {key: sum(x[key] for x in scores) / len(scores) for key in ("length_pred", "length_ref")}
    assert mean == {
        "length_pred": lengths["mean_prediction_chars"],
        "length_ref": lengths["mean_reference_chars"],
    }


def test_parses_after_insert_is_passed_through() -> None:
    assert s("a", "a", parses=True)["parses_after_insert"] == 1.0
    assert s("a", "a", parses=False)["parses_after_insert"] == 0.0


# --- acceptance -----------------------------------------------------------------------------


def scores(**values: float) -> dict[str, float]:
    return {"exact_match": 0.0, "parses_after_insert": 1.0, **values}


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        ({"es_rapidfuzz": 0.85}, True),
        ({"es_rapidfuzz": 0.8}, True),  # threshold is inclusive
        ({"es_rapidfuzz": 0.79}, False),
        ({"es_rapidfuzz": 0.95, "parses_after_insert": 0.0}, False),  # must still parse
        ({"es_rapidfuzz": 0.1, "parses_after_insert": 0.0, "exact_match": 1.0}, True),  # EM always
    ],
)
def test_default_rule(values: dict[str, float], accepted: bool) -> None:
    assert AcceptanceRule().accepts(scores(**values)) is accepted


def test_rule_without_parse_requirement_and_lower_is_better_metric() -> None:
    assert AcceptanceRule(require_parse=False).accepts(
        scores(es_rapidfuzz=0.9, parses_after_insert=0.0)
    )
    short = AcceptanceRule(metric="length_pred", threshold=120)
    assert short.accepts(scores(length_pred=120))
    assert not short.accepts(scores(length_pred=121))


def test_rule_on_real_scores() -> None:
    rule = AcceptanceRule(metric="es_levenshtein", threshold=0.75)
    assert rule.accepts(s("abcd", "abce"))  # es_levenshtein 0.75
    assert not rule.accepts(s("kitten", "sitting"))  # es_levenshtein 4/7
    bleu = AcceptanceRule(metric="bleu4_aixcoder", threshold=0.8)  # aiXcoder's "acceptable"
    assert bleu.accepts(s("return  x", "return x"))  # same 13a tokens: BLEU 1
    assert not bleu.accepts(s("return y", "return x"))


def test_rules_stored_under_former_metric_names_still_read() -> None:
    for old, new in (("es_fuzz", "es_rapidfuzz"), ("es_lev", "es_levenshtein")):
        rule = AcceptanceRule.from_dict({"metric": old, "metric_version": 1, "threshold": 0.7})
        assert rule == AcceptanceRule(new, 0.7)
    with pytest.raises(ConfigError, match="Unknown metric 'length_ratio'"):
        AcceptanceRule.from_dict({"metric": "length_ratio"})  # no successor: aggregate means


def test_rule_round_trip() -> None:
    rule = AcceptanceRule(metric="identifier_f1", threshold=0.5, require_parse=False)
    data = rule.to_dict()
    assert data == {
        "metric": "identifier_f1",
        "metric_version": 2,
        "threshold": 0.5,
        "require_parse": False,
    }
    assert AcceptanceRule.from_dict(data) == rule
    assert AcceptanceRule.from_dict({}) == AcceptanceRule("es_rapidfuzz", 0.8, True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"metric": "bleu"}, "Unknown metric 'bleu'"),
        ({"threshold": "high"}, "must be a number"),
        ({"threshold": True}, "must be a number"),
        ({"threshold": math.nan}, "must be finite"),
        ({"require_parse": "yes"}, "require_parse must be true or false"),
        ({"metric": "es_rapidfuzz", "margin": 1}, "Unknown acceptance rule keys: margin"),
        ({"metric": "es_rapidfuzz", "metric_version": 2}, "wants es_rapidfuzz version 2"),
    ],
)
def test_rule_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AcceptanceRule.from_dict(data)


# --- lines and characters -------------------------------------------------------------------


def test_suggested_lines_chars() -> None:
    # stripped: "a = 1\n\n  b = 2" = 5 + 1 + 1 + 7 = 14 chars, 2 non-blank lines
    assert suggested_lines_chars("\n  a = 1\n\n  b = 2\n") == (2, 14)


def test_accepted_lines_chars() -> None:
    pred, ref = "a = 1\nb = 2\nc = 3", "a = 1\nb = 3\nc = 3"
    # lines "a = 1" and "c = 3" occur in the reference, "b = 2" does not; the texts (17 chars)
    # differ in one character, so their longest common subsequence is 16.
    assert accepted_lines_chars(pred, ref, True) == (2, 16)
    assert accepted_lines_chars(pred, ref, False) == (0, 0)
    assert accepted_lines_chars("x\nx", "x", True) == (1, 1)  # each reference line counts once
    assert accepted_lines_chars(ref, ref, True) == suggested_lines_chars(ref) == (3, 17)
