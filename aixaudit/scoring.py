"""Named, versioned metrics comparing a completion with the masked original, and acceptance.

Harnesses disagree on what "exact match" or "edit similarity" mean (see the docs of each
metric), so every score is stored with its metric's name and version: changing a definition
means a new version, and old runs stay comparable with themselves.
"""

from __future__ import annotations

import keyword
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import tree_sitter
from rapidfuzz import fuzz
from rapidfuzz.distance import LCSseq, Levenshtein

from aixaudit.errors import ConfigError
from aixaudit.languages import Language, parse


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


# --- the metrics ----------------------------------------------------------------------------


@metric(
    "exact_match",
    version=1,
    definition="1 if prediction.strip() == reference.strip() else 0 (aiXcoder FIM harness)",
)
def _exact_match(pair: Pair) -> float:
    return float(pair.prediction.strip() == pair.reference.strip())


@metric(
    "es_fuzz",
    version=1,
    definition="rapidfuzz fuzz.ratio of the stripped texts / 100, i.e. 1 - Indel distance / "
    "total length (CrossCodeEval, RepoBench edit similarity)",
)
def _es_fuzz(pair: Pair) -> float:
    return fuzz.ratio(pair.prediction.strip(), pair.reference.strip()) / 100


@metric(
    "es_lev",
    version=1,
    definition="1 - Levenshtein distance / max length of the stripped texts, 1 when both "
    "are empty (LongBench-style edit similarity)",
)
def _es_lev(pair: Pair) -> float:
    pred, ref = pair.prediction.strip(), pair.reference.strip()
    longest = max(len(pred), len(ref))
    return 1.0 - Levenshtein.distance(pred, ref) / longest if longest else 1.0


@metric(
    "identifier_em",
    version=1,
    definition="1 if the identifier sequences (in order, repeats kept) are equal "
    "(CrossCodeEval identifier exact match)",
)
def _identifier_em(pair: Pair) -> float:
    return float(pair.pred_ids == pair.ref_ids)


@metric(
    "identifier_f1",
    version=1,
    definition="F1 of the sets of identifiers, 2tp / (2tp + fp + fn) (CrossCodeEval); "
    "1 when both have none",
)
def _identifier_f1(pair: Pair) -> float:
    pred, ref = set(pair.pred_ids), set(pair.ref_ids)
    if not pred and not ref:
        return 1.0  # CrossCodeEval's 0 would fail a correct `return 1`
    true_pos = len(pred & ref)
    return 2 * true_pos / (len(pred) + len(ref))


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
    "length_ratio",
    version=1,
    higher_is_better=False,
    definition="len(prediction.strip()) / len(reference.strip()); 1 is ideal, above 1 is "
    "over-long (aiXcoder Length(Pred/Ref)); empty reference: 1 if the prediction "
    "is empty too, else 0",
)
def _length_ratio(pair: Pair) -> float:
    pred, ref = pair.prediction.strip(), pair.reference.strip()
    if not ref:
        return float(not pred)
    return len(pred) / len(ref)


# --- identifiers ------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JS_WORDS = (
    "break case catch class const continue debugger default delete do else export extends "
    "finally for function if import in instanceof let new return super switch this throw try "
    "typeof var void while with yield true false null undefined"
)
_C_WORDS = (
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while _Bool NULL true false"
)
# Reserved words and literal words, excluded when identifiers are found by the regex.
_KEYWORDS: dict[str, str] = {
    "python": " ".join(keyword.kwlist),
    "java": (
        "abstract assert boolean break byte case catch char class const continue default do "
        "double else enum extends final finally float for goto if implements import instanceof "
        "int interface long native new package private protected public return short static "
        "strictfp super switch synchronized this throw throws transient try void volatile while "
        "true false null"
    ),
    "javascript": _JS_WORDS,
    "typescript": _JS_WORDS + " enum implements interface package private protected public "
    "any boolean never number object string symbol unknown",
    "go": (
        "break case chan const continue default defer else fallthrough for func go goto if "
        "import interface map package range return select struct switch type var true false nil "
        "iota"
    ),
    "rust": (
        "as async await break const continue crate dyn else enum extern false fn for if impl in "
        "let loop match mod move mut pub ref return self Self static struct super trait true "
        "type unsafe use where while"
    ),
    "c": _C_WORDS,
    "cpp": _C_WORDS
    + (
        " alignas alignof and bitand bitor bool catch class compl concept constexpr const_cast "
        "decltype delete dynamic_cast explicit friend mutable namespace new noexcept not nullptr "
        "operator or private protected public reinterpret_cast requires static_assert "
        "static_cast template this throw try typeid typename using virtual wchar_t xor "
        "co_await co_return co_yield"
    ),
}
_KEYWORDS["tsx"] = _KEYWORDS["typescript"]
# Fragments (a statement, a block body) parse inside a function body in these languages.
_BODY_WRAPPERS: dict[str, tuple[str, str]] = {
    "c": ("void f(void) {\n", "\n}\n"),
    "cpp": ("void f() {\n", "\n}\n"),
    "java": ("class A { void f() {\n", "\n} }\n"),
    "javascript": ("function f() {\n", "\n}\n"),
    "typescript": ("function f() {\n", "\n}\n"),
    "tsx": ("function f() {\n", "\n}\n"),
    "go": ("package p\nfunc f() {\n", "\n}\n"),
    "rust": ("fn f() {\n", "\n}\n"),
}


def identifiers(code: str, language: Language) -> list[str]:
    """Identifiers of a code fragment, in order, repeats kept.

    From the syntax tree when the fragment parses without an ERROR node on its own or inside a
    function body (MISSING nodes, e.g. a `;` after a bare condition, are tolerated): leaves of
    type `identifier` or `*_identifier`, so words in strings and comments don't count.
    Otherwise every `[A-Za-z_][A-Za-z0-9_]*` word that is not a keyword of the language.
    """
    code = code.strip()
    for before, after in (("", ""), _wrapper(language, code)):
        tree = parse(language, (before + code + after).encode())
        if not _has_error_node(tree.root_node):
            start = len(before.encode())
            end = start + len(code.encode())
            return [
                node.text.decode()
                for node in _nodes(tree.root_node)
                if node.child_count == 0
                and _is_identifier_type(node.type)
                and start <= node.start_byte < end
                and node.text is not None
            ]
    keywords = _keyword_set(language.name)
    return [word for word in _IDENTIFIER.findall(code) if word not in keywords]


def _wrapper(language: Language, code: str) -> tuple[str, str]:
    if language.name != "python":
        return _BODY_WRAPPERS.get(language.name, ("", ""))
    # A Python body's first line lost its indentation to the prefix; give it back.
    indents = [
        line[: len(line) - len(line.lstrip())] for line in code.splitlines()[1:] if line.strip()
    ]
    indent = min(indents, key=len) if indents else ""
    return "if True:\n" + (indent or "    "), "\n"


def _is_identifier_type(node_type: str) -> bool:
    return node_type == "identifier" or node_type.endswith("_identifier")


def _has_error_node(root: tree_sitter.Node) -> bool:
    return root.has_error and any(node.is_error for node in _nodes(root))


def _nodes(root: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """All nodes in document order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


@cache
def _keyword_set(language: str) -> frozenset[str]:
    return frozenset(_KEYWORDS.get(language, "").split())


# --- acceptance -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptanceRule:
    """When an offline completion counts as "accepted" (no person presses Tab in an audit).

    Exact match always accepts. Otherwise the metric must reach the threshold (>= for metrics
    where higher is better, <= for the others) and, if require_parse, the file must still parse.
    """

    metric: str = "es_fuzz"
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
        """Read a rule; a metric_version, if given, must be the registered one."""
        unknown = set(data) - {"metric", "metric_version", "threshold", "require_parse"}
        if unknown:
            raise ConfigError(f"Unknown acceptance rule keys: {', '.join(sorted(unknown))}.")
        rule = cls(**{key: value for key, value in data.items() if key != "metric_version"})
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
