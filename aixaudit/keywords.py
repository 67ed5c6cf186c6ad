"""Reserved words per language, which CrossCodeEval's identifier metrics do not count.

Data, with its sources. CrossCodeEval (amazon-science/cceval, scripts/keywords/, commit
25f9cab757f5607695a4e7cbe7c4fee09d423d4c) ships lists for Java, JavaScript and TypeScript (one
list for both) and takes Python's from `keyword.kwlist` without `True` and `False`. Its
keywordlist.py comes from microsoft/dpu-utils, whose lists for C, C++ and Go
(python/dpu_utils/codeutils/keywords/, commit a8172c37f9339e03a3b99b0699ddde711c8befff) are
used for those languages. Rust has a list in neither: its strict and reserved keywords from the
Rust Reference are used, without `true` and `false` as dpu-utils leaves literals out.
"""

from __future__ import annotations

import keyword

_JAVASCRIPT = (
    "break case catch class const continue debugger default delete do else export extends "
    "finally for function if import in instanceof new return super switch this throw try typeof "
    "var void while with yield enum implements interface let package private protected public "
    "static"
)

KEYWORDS: dict[str, frozenset[str]] = {
    name: frozenset(words.split())
    for name, words in {
        "python": " ".join(word for word in keyword.kwlist if word not in ("True", "False")),
        "java": (
            "abstract assert boolean break byte case catch char class continue default do double "
            "else enum extends final finally float for if implements import instanceof int "
            "interface long native new package private protected public return short static "
            "strictfp super switch synchronized this throw throws transient try void volatile "
            "while var const goto"
        ),
        "javascript": _JAVASCRIPT,
        "typescript": _JAVASCRIPT,
        "tsx": _JAVASCRIPT,
        "c": (
            "auto break case char const continue default do double else enum extern float for "
            "goto if int long register return short signed sizeof static struct switch typedef "
            "union unsigned void volatile while"
        ),
        "cpp": (
            "alignas alignof and and_eq asm atomic_cancel atomic_commit atomic_noexcept auto "
            "bitand bitor bool break case catch char char8_t char16_t char32_t class compl "
            "concept const consteval constexpr const_cast continue co_await co_return co_yield "
            "decltype default delete do double dynamic_cast else enum explicit export extern "
            "false float for friend goto if inline int long mutable namespace new noexcept not "
            "not_eq nullptr operator or or_eq private protected public reflexpr register "
            "reinterpret_cast requires return short signed sizeof static static_assert "
            "static_cast struct switch synchronized template this thread_local throw true try "
            "typedef typeid typename union unsigned using virtual void volatile wchar_t while xor "
            "xor_eq"
        ),
        "go": (
            "break default func interface select case defer go map struct chan else goto package "
            "switch const fallthrough if range type continue for import return var"
        ),
        "rust": (
            "as async await break const continue crate dyn else enum extern fn for if impl in let "
            "loop match mod move mut pub ref return self Self static struct super trait type "
            "unsafe use where while abstract become box do final macro override priv typeof "
            "unsized virtual yield try"
        ),
    }.items()
}
