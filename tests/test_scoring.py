from __future__ import annotations

import math
from typing import Any

import pytest

from aixaudit.errors import ConfigError
from aixaudit.languages import get_language
from aixaudit.scoring import (
    METRICS,
    AcceptanceRule,
    Metric,
    accepted_lines_chars,
    get_metric,
    identifiers,
    metric,
    score,
    suggested_lines_chars,
)

PY = get_language("python")


def s(pred: str, ref: str, *, lang: str = "python", parses: bool = True) -> dict[str, float]:
    return score(pred, ref, language=get_language(lang), parses=parses)


# --- registry -------------------------------------------------------------------------------


def test_registry_contents() -> None:
    assert list(METRICS) == [
        "exact_match",
        "es_fuzz",
        "es_lev",
        "identifier_em",
        "identifier_f1",
        "parses_after_insert",
        "length_ratio",
    ]
    for name, m in METRICS.items():
        assert m.name == name and m.version >= 1 and len(m.definition) > 20
    assert [n for n, m in METRICS.items() if not m.higher_is_better] == ["length_ratio"]
    assert set(s("a", "b")) == set(METRICS)


def test_registering_a_name_twice_fails_and_keeps_the_first() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        metric("es_fuzz", version=2, definition="other")(lambda pair: 0.0)
    assert METRICS["es_fuzz"].version == 1


def test_get_metric_unknown_name_is_a_config_error() -> None:
    assert get_metric("es_lev") == METRICS["es_lev"]
    assert isinstance(get_metric("es_lev"), Metric)
    with pytest.raises(ConfigError, match=r"Unknown metric 'bleu'; known metrics: exact_match"):
        get_metric("bleu")


# --- metrics against hand-computed values ---------------------------------------------------


def test_exact_match_strips_outer_whitespace_only() -> None:
    assert s("  return x\n", "return x")["exact_match"] == 1.0
    assert s("return  x", "return x")["exact_match"] == 0.0


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("abcd", "abce", 0.75),  # LCS "abc" = 3; 2*3 / (4+4) = 0.75
        (" abcd\n", "abce", 0.75),  # stripped first
        ("return y", "return x", 0.875),  # LCS "return " = 7; 2*7 / 16
        ("ab", "ba", 0.5),  # LCS 1; 2*1 / 4
        ("abc", "", 0.0),  # 0 / 3
        ("", "", 1.0),  # rapidfuzz: two empty strings are identical
    ],
)
def test_es_fuzz(pred: str, ref: str, expected: float) -> None:
    assert s(pred, ref)["es_fuzz"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("kitten", "sitting", 4 / 7),  # k->s, e->i, +g: distance 3; 1 - 3/7
        ("abcd", "abce", 0.75),  # one substitution: 1 - 1/4
        ("ab", "ba", 0.0),  # two substitutions: 1 - 2/2 (es_fuzz gives 0.5 here)
        ("ab", "", 0.0),  # 1 - 2/2
        ("", "", 1.0),  # defined
        ("  x\n", "x", 1.0),  # stripped first
    ],
)
def test_es_lev(pred: str, ref: str, expected: float) -> None:
    assert s(pred, ref)["es_lev"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "ref", "em", "f1"),
    [
        ("foo(a, b)", "foo(b, a)", 0.0, 1.0),  # same set {foo, a, b}, other order: 2*3/6
        ("x = compute(a, b)", "x = compute(a, c)", 0.0, 0.75),  # tp 3, fp 1, fn 1: 6/(6+1+1)
        ("a + a", "a", 0.0, 1.0),  # [a, a] != [a]; sets {a} = {a}
        ('print("hello world")', 'print("bye")', 1.0, 1.0),  # strings are not identifiers
        ("1", "2", 1.0, 1.0),  # no identifiers on either side
        ("x", "1", 0.0, 0.0),  # tp 0: 0 / (0+1+0)
    ],
)
def test_identifier_em_and_f1(pred: str, ref: str, em: float, f1: float) -> None:
    scores = s(pred, ref)
    assert (scores["identifier_em"], scores["identifier_f1"]) == (em, pytest.approx(f1))


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("abcdef", "abc", 2.0),  # 6 / 3
        (" ab \n", "abcd", 0.5),  # 2 / 4 after strip
        ("", "", 1.0),  # empty reference, empty prediction
        ("x", "  ", 0.0),  # empty reference, something predicted
    ],
)
def test_length_ratio(pred: str, ref: str, expected: float) -> None:
    assert s(pred, ref)["length_ratio"] == expected


def test_parses_after_insert_is_passed_through() -> None:
    assert s("a", "a", parses=True)["parses_after_insert"] == 1.0
    assert s("a", "a", parses=False)["parses_after_insert"] == 0.0


# --- identifier extraction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "code", "expected"),
    [
        # Parses alone: tree-sitter leaves, string contents and comments left out.
        ("python", 'log.info("a b")  # note', ["log", "info"]),
        # A body whose first line lost its indentation: parsed inside "if True:".
        ("python", "y = x + 1\n        return y", ["y", "x", "y"]),
        # Bare condition inside a C function body: only a MISSING ";", tolerated.
        ("c", "x > 0 && y", ["x", "y"]),
        ("cpp", "v.push_back(n);", ["v", "push_back", "n"]),
        ("go", 'x := fmt.Sprintf("%d", n) // c', ["x", "fmt", "Sprintf", "n"]),
        ("java", "list.size()", ["list", "size"]),
        ("javascript", "if (a.get(x)) { return this.b; }", ["a", "get", "x", "b"]),
        ("typescript", "const n: number = f(m);", ["n", "f", "m"]),
        ("rust", "let v: Vec<i32> = compute(1, 2);", ["v", "Vec", "compute"]),
        # No parse even in a body: regex words minus keywords (strings are no longer excluded).
        ("python", 'if x and not y("z"', ["x", "y", "z"]),
        ("go", "for i := range (", ["i"]),
    ],
)
def test_identifiers(lang: str, code: str, expected: list[str]) -> None:
    assert identifiers(code, get_language(lang)) == expected


# --- acceptance -----------------------------------------------------------------------------


def scores(**values: float) -> dict[str, float]:
    return {"exact_match": 0.0, "parses_after_insert": 1.0, **values}


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        ({"es_fuzz": 0.85}, True),
        ({"es_fuzz": 0.8}, True),  # threshold is inclusive
        ({"es_fuzz": 0.79}, False),
        ({"es_fuzz": 0.95, "parses_after_insert": 0.0}, False),  # must still parse
        ({"es_fuzz": 0.1, "parses_after_insert": 0.0, "exact_match": 1.0}, True),  # EM always
    ],
)
def test_default_rule(values: dict[str, float], accepted: bool) -> None:
    assert AcceptanceRule().accepts(scores(**values)) is accepted


def test_rule_without_parse_requirement_and_lower_is_better_metric() -> None:
    assert AcceptanceRule(require_parse=False).accepts(scores(es_fuzz=0.9, parses_after_insert=0.0))
    too_long = AcceptanceRule(metric="length_ratio", threshold=1.2)
    assert too_long.accepts(scores(length_ratio=1.1))
    assert not too_long.accepts(scores(length_ratio=1.5))


def test_rule_on_real_scores() -> None:
    rule = AcceptanceRule(metric="es_lev", threshold=0.75)
    assert rule.accepts(s("abcd", "abce"))  # es_lev 0.75
    assert not rule.accepts(s("kitten", "sitting"))  # es_lev 4/7


def test_rule_round_trip() -> None:
    rule = AcceptanceRule(metric="identifier_f1", threshold=0.5, require_parse=False)
    data = rule.to_dict()
    assert data == {
        "metric": "identifier_f1",
        "metric_version": 1,
        "threshold": 0.5,
        "require_parse": False,
    }
    assert AcceptanceRule.from_dict(data) == rule
    assert AcceptanceRule.from_dict({}) == AcceptanceRule("es_fuzz", 0.8, True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"metric": "bleu"}, "Unknown metric 'bleu'"),
        ({"threshold": "high"}, "must be a number"),
        ({"threshold": True}, "must be a number"),
        ({"threshold": math.nan}, "must be finite"),
        ({"require_parse": "yes"}, "require_parse must be true or false"),
        ({"metric": "es_fuzz", "margin": 1}, "Unknown acceptance rule keys: margin"),
        ({"metric": "es_fuzz", "metric_version": 2}, "wants es_fuzz version 2"),
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
