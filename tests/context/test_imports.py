"""Repository index: imports resolved to the repository's files per language, and the
signatures (with docstrings or doc comments) each file offers to the files importing it."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from aixaudit.context import IndexedFile, RepoIndex, build_index, outline
from aixaudit.context.retrieval import imported
from aixaudit.languages import get_language, language_for_path, parse


def index_of(files: dict[str, str]) -> RepoIndex:
    indexed = []
    for path, text in files.items():
        language = language_for_path(path)
        assert language is not None, path
        text = textwrap.dedent(text).lstrip()
        indexed.append(
            IndexedFile(path, language.name, hashlib.sha256(text.encode()).hexdigest(), text)
        )
    index, _ = build_index(indexed, {})
    return index


def resolved(index: RepoIndex, path: str) -> list[str]:
    return [found for found, _ in index.resolved_imports(path)]


def test_python_absolute_relative_and_submodule_imports() -> None:
    index = index_of(
        {
            "src/shop/__init__.py": "",
            "src/shop/cart.py": """
                import os
                import shop.prices
                from . import tax
                from .models import Item, Order
                from ..vendor import missing
                from shop.util import helpers
            """,
            "src/shop/prices.py": "def price(item):\n    return 1\n",
            "src/shop/tax.py": "RATE = 0.2\n",
            "src/shop/models.py": "class Item:\n    pass\n",
            "src/shop/util/__init__.py": "",
            "src/shop/util/helpers.py": "def help():\n    pass\n",
            "other/shop/prices.py": "def price(item):\n    return 2\n",
        }
    )
    found = resolved(index, "src/shop/cart.py")
    # os and the climbing-out import have no file here; the nearer of two shop/prices.py wins
    # the first place, both are candidates.
    assert found[:4] == [
        "src/shop/prices.py",
        "src/shop/tax.py",
        "src/shop/models.py",
        "src/shop/util/helpers.py",
    ]
    assert set(found) == {
        "src/shop/prices.py",
        "other/shop/prices.py",
        "src/shop/tax.py",
        "src/shop/models.py",
        "src/shop/util/helpers.py",
    }
    assert found.index("other/shop/prices.py") > found.index("src/shop/util/helpers.py")


def test_java_class_static_and_wildcard_imports() -> None:
    index = index_of(
        {
            "src/main/java/com/acme/App.java": """
                package com.acme;
                import com.acme.util.Strings;
                import static com.acme.util.Numbers.twice;
                import com.acme.model.*;
                import java.util.List;
                class App {}
            """,
            "src/main/java/com/acme/util/Strings.java": "class Strings {}\n",
            "src/main/java/com/acme/util/Numbers.java": "class Numbers {}\n",
            "src/main/java/com/acme/model/User.java": "class User {}\n",
            "src/main/java/com/acme/model/Role.java": "class Role {}\n",
        }
    )
    assert set(resolved(index, "src/main/java/com/acme/App.java")) == {
        "src/main/java/com/acme/util/Strings.java",
        "src/main/java/com/acme/util/Numbers.java",
        "src/main/java/com/acme/model/User.java",
        "src/main/java/com/acme/model/Role.java",
    }


def test_javascript_and_typescript_relative_imports() -> None:
    index = index_of(
        {
            "web/app.js": """
                import React from 'react';
                import { total } from './cart';
                const fmt = require("../lib/format.js");
                export { badge } from './widgets';
            """,
            "web/cart.js": "export function total(items) { return 0; }\n",
            "lib/format.js": "module.exports = function fmt() {};\n",
            "web/widgets/index.js": "export const badge = () => 1;\n",
            "web/user.ts": "import type { Id } from './types.js';\nexport const u = 1;\n",
            "web/types.ts": "export type Id = string;\n",
        }
    )
    assert resolved(index, "web/app.js") == ["web/cart.js", "web/widgets/index.js", "lib/format.js"]
    assert resolved(index, "web/user.ts") == ["web/types.ts"]


def test_go_package_imports_by_module_path() -> None:
    index = index_of(
        {
            "cmd/server/main.go": """
                package main
                import (
                    "fmt"
                    "github.com/acme/shop/internal/store"
                )
            """,
            "internal/store/store.go": "package store\nfunc Open() {}\n",
            "internal/store/cache.go": "package store\nfunc Cache() {}\n",
            "internal/store/store_test.go": "package store\n",
        }
    )
    assert set(resolved(index, "cmd/server/main.go")) == {
        "internal/store/store.go",
        "internal/store/cache.go",
    }


def test_rust_crate_super_and_mod_paths() -> None:
    index = index_of(
        {
            "src/lib.rs": "mod net;\nmod util;\n",
            "src/net/mod.rs": "use crate::util::{clamp, text::Upper};\nuse super::util;\nmod http;",
            "src/net/http.rs": "use super::super::util::clamp;\npub fn get() {}\n",
            "src/util.rs": "pub fn clamp() {}\n",
            "src/util/text.rs": "pub struct Upper;\n",
        }
    )
    assert resolved(index, "src/lib.rs") == ["src/util.rs", "src/net/mod.rs"]
    assert set(resolved(index, "src/net/mod.rs")) == {
        "src/util.rs",
        "src/util/text.rs",
        "src/net/http.rs",
    }
    assert resolved(index, "src/net/http.rs") == ["src/util.rs"]


@pytest.mark.parametrize("ext", ["c", "cpp"])
def test_c_and_cpp_includes_beside_then_by_path(ext: str) -> None:
    index = index_of(
        {
            f"src/main.{ext}": '#include <stdio.h>\n#include "buffer.h"\n#include "net/socket.h"\n',
            "src/buffer.h": "int buffer_len(void);\n",
            "include/buffer.h": "int other(void);\n",
            "include/net/socket.h": "int socket_open(int port);\n",
        }
    )
    assert resolved(index, f"src/main.{ext}") == ["src/buffer.h", "include/net/socket.h"]


def test_imported_fragments_hold_signatures_and_docs_not_bodies() -> None:
    index = index_of(
        {
            "pkg/geometry.py": '''
                def area(width, height):
                    """Area of a rectangle."""
                    secret_body = width * height
                    return secret_body

                class Shape:
                    """A shape."""

                    def scale(self, factor):
                        return factor * 2

                def unrelated():
                    return 0
            ''',
            "pkg/main.py": "from pkg.geometry import area, Shape\n",
            "web/math.js": "/** Adds two numbers. */\nexport function add(a, b) { return a + b; }",
            "web/app.js": "import { add } from './math.js';\n",
        }
    )
    [python] = imported(index, "pkg/main.py")
    assert python.path == "pkg/geometry.py"
    assert 'def area(width, height):\n    """Area of a rectangle."""' in python.text
    assert "class Shape:" in python.text and "    def scale(self, factor):" in python.text
    assert "secret_body" not in python.text and "return" not in python.text
    assert "unrelated" not in python.text  # not imported by name
    [javascript] = imported(index, "web/app.js")
    assert javascript.text == "/** Adds two numbers. */\nexport function add(a, b)"


def test_typescript_adds_its_own_patterns_to_javascripts_query() -> None:
    """One copy of what JavaScript and TypeScript share: typescript.scm holds only TypeScript's
    own patterns, and a TypeScript file is read with both."""
    folder = Path(outline.__file__).parent / "queries"

    def patterns(name: str) -> set[str]:
        text = (folder / f"{name}.scm").read_text()
        return {line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", ";")}

    assert patterns("typescript") and not patterns("typescript") & patterns("javascript")
    index = index_of(
        {
            "web/user.ts": """
                import { Id } from './types';
                /** A user of the shop. */
                export interface User { id: Id }
                export type Name = string;
                export function greet(user: User): string { return 'hi'; }
                export const shout = (name: Name) => name.toUpperCase();
            """,
            "web/types.ts": "export type Id = string;\n",
        }
    )
    assert resolved(index, "web/user.ts") == ["web/types.ts"]
    names = [d.name for d in index.definitions("web/user.ts")]
    assert names == ["User", "Name", "greet", "shout"]


def test_python_names_re_exported_by_a_package_resolve_to_their_definition() -> None:
    """`from shop import Cart`, where shop/__init__.py does `from .cart import Cart`, shows the
    signature in shop/cart.py: a package's __init__ re-exports, followed through a chain."""
    index = index_of(
        {
            "shop/__init__.py": '''
                """The shop."""
                from .cart import Cart
                from .money import Money as Money
                from shop.tax import rate

                VERSION = "1"

                def open_shop(name):
                    """A shop of that name."""
            ''',
            "shop/cart.py": '''
                class Cart:
                    """What a customer will buy."""

                def helper():
                    pass
            ''',
            "shop/money.py": "from .cents import Money\n",
            "shop/cents.py": "class Money:\n    '''An amount in cents.'''\n",
            "shop/tax.py": "def rate(country):\n    return 0.2\n",
            "app.py": "from shop import Cart, Money, rate, open_shop\n",
            "loop/__init__.py": "from loop.a import f\n",
            "loop/a.py": "from loop import f\n",
            "uses_loop.py": "from loop import f\n",
        }
    )
    # In the order the names are imported; the package keeps what it defines itself.
    assert resolved(index, "app.py") == [
        "shop/cart.py",
        "shop/cents.py",
        "shop/tax.py",
        "shop/__init__.py",
    ]
    fragments = {fragment.path: fragment.text for fragment in imported(index, "app.py")}
    assert fragments["shop/cart.py"] == 'class Cart:\n    """What a customer will buy."""'
    assert fragments["shop/cents.py"] == "class Money:\n    '''An amount in cents.'''"
    assert fragments["shop/tax.py"] == "def rate(country):"
    assert fragments["shop/__init__.py"].startswith("def open_shop(name):")
    # A name imported in a circle is looked for once along it; it has no definition here.
    assert resolved(index, "uses_loop.py") == ["loop/__init__.py"]


def test_python_outlines_read_what_a_module_offers_not_its_functions_branches() -> None:
    """Imports at the top level, in its branches and in a function's own block are read, as
    are definitions and methods; an import in a branch inside a function is local to it (the
    outline query does not look that deep: most of an outline's cost was the rest of the tree)."""
    text = textwrap.dedent("""
        import a
        if TYPE_CHECKING:
            import b
        try:
            import c
        except ImportError:
            import d

        def f():
            import e
            if e:
                import hidden
                for x in e:
                    import deeper

        @decorated
        class K:
            def m(self):
                def inner():
                    pass
    """).lstrip()
    language = get_language("python")
    source = text.encode()
    found = outline.read_outline(language, source, parse(language, source).root_node)
    assert [item.module for item in found.imports] == ["a", "b", "c", "d", "e"]
    assert [(d.name, d.owner) for d in found.definitions] == [("f", ""), ("K", ""), ("m", "K")]
