"""Named, versioned metrics comparing a completion with the masked original, and acceptance.

Harnesses disagree on what "exact match" or "edit similarity" mean, so a metric named after a
harness reproduces that harness's code on any input (pinned in tests/test_scoring.py to values
its code produced), cites its repository, file and commit in its definition, and another
definition gets another name. Every score is stored with its metric's name and version:
changing what a metric computes means a new version, and old runs stay comparable with
themselves.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cached_property
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import LCSseq, Levenshtein
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from aixaudit.errors import ConfigError
from aixaudit.keywords import KEYWORDS
from aixaudit.languages import Language


@dataclass(frozen=True)
class Metric:
    name: str
    version: int
    definition: str
    higher_is_better: bool


METRICS: dict[str, Metric] = {}
_COMPUTE: dict[str, Callable[[Pair], float]] = {}


@dataclass
class Pair:
    """What a metric function sees; identifiers are extracted once for both identifier metrics."""

    prediction: str
    reference: str
    language: Language
    parses: bool

    @cached_property
    def pred_ids(self) -> list[str]:
        return identifiers(self.prediction, self.language)

    @cached_property
    def ref_ids(self) -> list[str]:
        return identifiers(self.reference, self.language)


def metric(
    name: str, *, version: int, definition: str, higher_is_better: bool = True
) -> Callable[[Callable[[Pair], float]], Callable[[Pair], float]]:
    """Register a metric function under a name, a version and a one-line definition."""

    def register(compute: Callable[[Pair], float]) -> Callable[[Pair], float]:
        if name in METRICS:
            raise ValueError(f"metric {name} is registered twice")
        METRICS[name] = Metric(name, version, definition, higher_is_better)
        _COMPUTE[name] = compute
        return compute

    return register


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(METRICS)
        raise ConfigError(f"Unknown metric {name!r}; known metrics: {known}.") from None


def score(prediction: str, reference: str, *, language: Language, parses: bool) -> dict[str, float]:
    """Every registered metric for one completion, by name."""
    pair = Pair(prediction, reference, language, parses)
    return {name: compute(pair) for name, compute in _COMPUTE.items()}


# --- the references ---------------------------------------------------------------------------

AIXCODER = (
    "aixcoder-plugin/aiXcoder-FIM-Evaluation run_evaluate.py "
    "@ bd3771e3b9aefa85db78e12fee93e3136accadc7"
)
CCEVAL = (
    "amazon-science/cceval scripts/eval_metric.py, scripts/eval_utils.py "
    "@ 25f9cab757f5607695a4e7cbe7c4fee09d423d4c"
)
REPOBENCH = "Leolty/repobench evaluation/metrics.py @ 630c8658fa336c2d8cd86dcd26740fe172db07cd"
LONGBENCH = "THUDM/LongBench LongBench/metrics.py @ 2e00731f8d0bff23dc4325161044d0ed8af94c1e"
FUZZYWUZZY = (
    "fuzzywuzzy 0.18.0 fuzz.ratio without python-Levenshtein, as the harness installs it: "
    "100 if equal, 0 if one side is empty, else round(100 * difflib "
    "SequenceMatcher(None, prediction, reference).ratio()), here / 100"
)


def fuzzywuzzy_ratio(prediction: str, reference: str) -> float:
    """fuzzywuzzy's `fuzz.ratio` / 100 where python-Levenshtein is absent (difflib, autojunk on,
    rounded half to even to an integer percentage), as CrossCodeEval, RepoBench and LongBench
    run it; far below rapidfuzz's Indel ratio on long texts, where autojunk drops common
    characters."""
    if prediction == reference:
        return 1.0
    if not prediction or not reference:
        return 0.0
    return round(100 * SequenceMatcher(None, prediction, reference).ratio()) / 100


# CrossCodeEval's remove_comments: from `#` or `//` to the end of the line, in any language
# and inside strings too.
_CCEVAL_COMMENT = re.compile(r"#.*|//.*")
# CrossCodeEval's string_pattern: '...' or "..." with backslash escapes, across lines.
_CCEVAL_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|\'[^\'\\]*(?:\\.[^\'\\]*)*\'')
_WORD = re.compile(r"\w+")
_IDENTIFIER_START = re.compile(r"[_a-zA-Z]")


def cceval_strip_comments(code: str) -> str:
    return _CCEVAL_COMMENT.sub("", code)


def identifiers(code: str, language: Language) -> list[str]:
    """CrossCodeEval's identifiers of a fragment, in order, repeats kept: comments removed
    (`#` or `//` to the line's end), then string literals, then every `\\w+` word that starts with
    an ASCII letter or `_` and is not a keyword of the language (aixaudit.keywords)."""
    code = _CCEVAL_STRING.sub("", cceval_strip_comments(code))
    keywords = KEYWORDS[language.name]
    return [
        word
        for word in _WORD.findall(code)
        if _IDENTIFIER_START.match(word) and word not in keywords
    ]


_TOKENIZE_13A: Callable[[str], str] = Tokenizer13a()


def tokens_13a(text: str) -> list[str]:
    """sacrebleu's 13a tokens, which aiXcoder's own Tokenizer13a returns as a list."""
    return _TOKENIZE_13A(text).split()


def bleu_aixcoder(prediction: list[str], reference: list[str]) -> float:
    """aiXcoder's calculate_bleu4 on one tokenised pair: n-grams up to 4, fewer when the
    reference has 3, 2 or 1 tokens; clipped precisions without smoothing; 0 when any precision
    is 0; brevity penalty exp(1 - ref/pred) when the prediction is not longer."""
    if not prediction or not reference:
        return 0.0  # the harness: 0.0 for no prediction tokens, ZeroDivisionError for no reference
    max_order = min(len(reference), 4)
    precisions = []
    for order in range(1, max_order + 1):
        pred_ngrams = Counter(_ngrams(prediction, order))
        overlap = pred_ngrams & Counter(_ngrams(reference, order))
        possible = len(prediction) - order + 1
        precisions.append(sum(overlap.values()) / possible if possible > 0 else 0.0)
    if min(precisions) <= 0:
        return 0.0
    geo_mean = math.exp(sum((1.0 / max_order) * math.log(p) for p in precisions))
    ratio = len(prediction) / len(reference)
    return geo_mean * (1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio))


def _ngrams(words: list[str], order: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + order]) for i in range(len(words) - order + 1)]


# --- the metrics ----------------------------------------------------------------------------


@metric(
    "exact_match",
    version=1,
    definition=f"1 if prediction.strip() == reference.strip() else 0 ({AIXCODER}, score())",
)
def _exact_match(pair: Pair) -> float:
    return float(pair.prediction.strip() == pair.reference.strip())


@metric(
    "exact_match_cceval",
    version=1,
    definition="1 if the stripped non-empty lines are equal after comments (# or // to the "
    f"line's end) are removed ({CCEVAL}, process_examples)",
)
def _exact_match_cceval(pair: Pair) -> float:
    def lines(text: str) -> list[str]:
        return [line.strip() for line in cceval_strip_comments(text).split("\n") if line.strip()]

    return float(lines(pair.prediction) == lines(pair.reference))


@metric(
    "exact_match_repobench",
    version=1,
    definition=f"1 if prediction.split() == reference.split() ({REPOBENCH}, exact_match_score)",
)
def _exact_match_repobench(pair: Pair) -> float:
    return float(pair.prediction.split() == pair.reference.split())


@metric(
    "es_cceval",
    version=1,
    definition="comments (# or // to the line's end) removed, both sides strip()ped, then "
    f"{FUZZYWUZZY} ({CCEVAL}, cal_edit_sim)",
)
def _es_cceval(pair: Pair) -> float:
    return fuzzywuzzy_ratio(
        cceval_strip_comments(pair.prediction).strip(),
        cceval_strip_comments(pair.reference).strip(),
    )


@metric(
    "es_repobench",
    version=1,
    definition=f"the texts as they are, {FUZZYWUZZY} ({REPOBENCH}, edit_similarity_score)",
)
def _es_repobench(pair: Pair) -> float:
    return fuzzywuzzy_ratio(pair.prediction, pair.reference)


@metric(
    "es_longbench",
    version=1,
    definition="the prediction's first line (after leading newlines) without `, # or //, or '' "
    f"if none, against the whole reference: {FUZZYWUZZY} ({LONGBENCH}, code_sim_score)",
)
def _es_longbench(pair: Pair) -> float:
    lines = pair.prediction.lstrip("\n").split("\n")
    first = next((line for line in lines if not any(m in line for m in ("`", "#", "//"))), "")
    return fuzzywuzzy_ratio(first, pair.reference)


@metric(
    "es_rapidfuzz",
    version=1,
    definition="rapidfuzz 3 fuzz.ratio of the strip()ped texts / 100, i.e. 1 - Indel distance / "
    "total length; 1 when both are empty. No harness computes this (their fuzz.ratio is "
    "difflib's: es_cceval, es_repobench); equal to theirs on short texts, not on long ones",
)
def _es_rapidfuzz(pair: Pair) -> float:
    return fuzz.ratio(pair.prediction.strip(), pair.reference.strip()) / 100


@metric(
    "es_levenshtein",
    version=1,
    definition="1 - Levenshtein distance / max length of the strip()ped texts, 1 when both "
    "are empty. No harness computes this (LongBench's code_sim_score is es_longbench)",
)
def _es_levenshtein(pair: Pair) -> float:
    pred, ref = pair.prediction.strip(), pair.reference.strip()
    longest = max(len(pred), len(ref))
    return 1.0 - Levenshtein.distance(pred, ref) / longest if longest else 1.0


@metric(
    "identifier_em",
    version=2,
    definition="1 if the identifier lists (in order, repeats kept) are equal; identifiers: "
    "comments then string literals removed, \\w+ words starting with [_a-zA-Z] that are not "
    f"keywords of the language (aixaudit/keywords.py) ({CCEVAL}, extract_identifiers)",
)
def _identifier_em(pair: Pair) -> float:
    return float(pair.pred_ids == pair.ref_ids)


@metric(
    "identifier_f1",
    version=2,
    definition="2tp / (2tp + fp + fn) over the sets of identifiers (as identifier_em), 0 when "
    f"both have none ({CCEVAL}, compute_id_match)",
)
def _identifier_f1(pair: Pair) -> float:
    pred, ref = set(pair.pred_ids), set(pair.ref_ids)
    if not pred and not ref:
        return 0.0
    true_pos = len(pred & ref)
    return 2 * true_pos / (len(pred) + len(ref))


@metric(
    "bleu4_aixcoder",
    version=1,
    definition="sentence BLEU-4 of the strip()ped texts on 13a tokens (sacrebleu 2.6.0), "
    "n-gram order lowered to 3/2/1 for references of 3/2/1 tokens, no smoothing; 1 on exact "
    f"match, 0 when a side is empty or has no tokens ({AIXCODER}, calculate_bleu4, score())",
)
def _bleu4_aixcoder(pair: Pair) -> float:
    pred, ref = pair.prediction.strip(), pair.reference.strip()
    if pred == ref:
        return 1.0
    return bleu_aixcoder(tokens_13a(pred), tokens_13a(ref))


@metric(
    "parses_after_insert",
    version=2,
    definition="1 if the completion is not blank and, in the file with it inserted, no "
    "ERROR/MISSING node lies inside it (beyond what the original had inside the span) and "
    "every node not wholly inside it has the type, nesting and order of the original file's "
    "nodes not wholly inside the span, each run of inside siblings counting as one (the whole "
    "file; if the original has syntax errors, the innermost definition around the span); "
    "stricter than SAFIM's check (gonglinyuan/safim prompt_utils.py "
    "truncate_line_until_block at 95432865d458d86458cfaff05fc8e6893dd20ff1)",
)
def _parses_after_insert(pair: Pair) -> float:
    return float(pair.parses)


@metric(
    "length_pred",
    version=1,
    higher_is_better=False,
    definition="len(prediction.strip()) in characters; its mean is the Pred of aiXcoder's "
    f"Length(Pred/Ref) ({AIXCODER}, analyze())",
)
def _length_pred(pair: Pair) -> float:
    return float(len(pair.prediction.strip()))


@metric(
    "length_ref",
    version=1,
    higher_is_better=False,
    definition="len(reference.strip()) in characters; its mean is the Ref of aiXcoder's "
    f"Length(Pred/Ref) ({AIXCODER}, analyze())",
)
def _length_ref(pair: Pair) -> float:
    return float(len(pair.reference.strip()))


# --- acceptance -----------------------------------------------------------------------------


# Former names of metrics whose computation and version did not change, for stored rules.
RENAMED = {"es_fuzz": "es_rapidfuzz", "es_lev": "es_levenshtein"}


@dataclass(frozen=True)
class AcceptanceRule:
    """When an offline completion counts as "accepted" (no person presses Tab in an audit).

    Exact match always accepts. Otherwise the metric must reach the threshold (>= for metrics
    where higher is better, <= for the others) and, if require_parse, the file must still parse.
    The default, es_rapidfuzz >= 0.8, is the computation this rule has always used (it was
    named es_fuzz before the names said what they compute).
    """

    metric: str = "es_rapidfuzz"
    threshold: float = 0.8
    require_parse: bool = True

    def __post_init__(self) -> None:
        get_metric(self.metric)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ConfigError(f"The acceptance threshold must be a number, not {self.threshold!r}.")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"The acceptance threshold must be finite, not {self.threshold}.")
        if not isinstance(self.require_parse, bool):
            raise ConfigError(f"require_parse must be true or false, not {self.require_parse!r}.")

    def accepts(self, scores: Mapping[str, float]) -> bool:
        if scores["exact_match"] >= 1.0:
            return True
        if self.require_parse and scores["parses_after_insert"] < 1.0:
            return False
        value = scores[self.metric]
        if METRICS[self.metric].higher_is_better:
            return value >= self.threshold
        return value <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "metric_version": METRICS[self.metric].version,
            "threshold": self.threshold,
            "require_parse": self.require_parse,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AcceptanceRule:
        """Read a rule; a metric_version, if given, must be the registered one. A stored rule
        that names a metric by its former name (same computation, same version) still reads."""
        unknown = set(data) - {"metric", "metric_version", "threshold", "require_parse"}
        if unknown:
            raise ConfigError(f"Unknown acceptance rule keys: {', '.join(sorted(unknown))}.")
        fields = {key: value for key, value in data.items() if key != "metric_version"}
        if isinstance(fields.get("metric"), str):
            fields["metric"] = RENAMED.get(fields["metric"], fields["metric"])
        rule = cls(**fields)
        version = data.get("metric_version")
        if version is not None and version != METRICS[rule.metric].version:
            raise ConfigError(
                f"The acceptance rule wants {rule.metric} version {version}, but this aixaudit "
                f"has version {METRICS[rule.metric].version}."
            )
        return rule


def suggested_lines_chars(prediction: str) -> tuple[int, int]:
    """Non-blank lines and characters (outer whitespace stripped) of a suggestion."""
    text = prediction.strip()
    return sum(1 for line in text.splitlines() if line.strip()), len(text)


def accepted_lines_chars(prediction: str, reference: str, accepted: bool) -> tuple[int, int]:
    """What of an accepted suggestion the user would keep when editing it into the reference.

    Lines: non-blank suggestion lines that also occur (stripped, each reference line used once)
    in the reference. Characters: the longest common subsequence of the stripped texts. For an
    exact match both equal `suggested_lines_chars`; a rejected suggestion keeps nothing.
    """
    if not accepted:
        return 0, 0
    pred, ref = prediction.strip(), reference.strip()
    available = Counter(line.strip() for line in ref.splitlines() if line.strip())
    lines = 0
    for line in (line.strip() for line in pred.splitlines() if line.strip()):
        if available[line] > 0:
            available[line] -= 1
            lines += 1
    return lines, int(LCSseq.similarity(pred, ref))
