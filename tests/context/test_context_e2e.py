"""Repository context end to end: the same points of a multi-language repository asked with each
strategy through the real CLI and a real tritonserver (CPU model, left to right), every run
listed by `aixaudit runs`, and context visible in what each prompt cost."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aixaudit.local_triton import LocalTriton

pytestmark = pytest.mark.triton

AIXAUDIT = Path(sys.executable).with_name("aixaudit")
POINTS = 32  # at least compare's minimum of 30 pairs
STRATEGIES = ("none", "imports", "similar", "both")

FILES = {
    "shop/prices.py": '''\
def unit_price(sku, catalog):
    """Price of one unit of `sku` in the catalog, in cents."""
    return catalog[sku].cents


def discounted(cents, percent):
    """`cents` less `percent` per cent, rounded down."""
    return cents * (100 - percent) // 100
''',
    "shop/cart.py": """\
from shop.prices import discounted, unit_price


def cart_total(items, catalog, percent):
    total = 0
    for sku, count in items:
        total += unit_price(sku, catalog) * count
    if percent:
        total = discounted(total, percent)
    return total
""",
    "web/format.js": """\
/** Cents as a price label, e.g. 1250 -> "12.50". */
export function priceLabel(cents) {
  return (cents / 100).toFixed(2);
}
""",
    "web/cart.js": """\
import { priceLabel } from './format.js';

export function cartLines(items) {
  const lines = [];
  for (const item of items) {
    if (item.count > 0) {
      lines.push(item.name + ' ' + priceLabel(item.cents * item.count));
    }
  }
  return lines;
}
""",
    "native/ring.h": """\
/* A fixed-size ring buffer of ints. */
struct ring { int data[64]; int head; int tail; };
int ring_push(struct ring *r, int value);
""",
    "native/ring.c": """\
#include "ring.h"

int ring_push(struct ring *r, int value) {
  int next = (r->head + 1) % 64;
  if (next == r->tail) {
    return -1;
  }
  r->data[r->head] = value;
  r->head = next;
  return 0;
}
""",
    "go/stock/stock.go": """\
package stock

// Reserve takes count units of sku out of the stock, or reports that there are too few.
func Reserve(levels map[string]int, sku string, count int) bool {
	if levels[sku] < count {
		return false
	}
	levels[sku] -= count
	return true
}
""",
    "go/main.go": """\
package main

import "example.com/shop/go/stock"

func main() {
	levels := map[string]int{"apple": 3}
	if !stock.Reserve(levels, "apple", 2) {
		panic("out of stock")
	}
}
""",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.fixture
def env(tmp_path: Path, triton_server: LocalTriton) -> Iterator[dict[str, str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIXAUDIT_")}
    yield clean | {
        "AIXAUDIT_DATA_DIR": str(tmp_path / "data"),
        "AIXAUDIT_TRITON_URL": f"grpc://{triton_server.grpc_url}",
    }


def aixaudit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIXAUDIT), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_one_command_asks_the_same_points_with_each_strategy(
    repo: Path, env: dict[str, str]
) -> None:
    done = aixaudit(
        "audit", str(repo), "--profile", "l2r", "--per-file", "5", "--max-points", str(POINTS),
        "--max-new-tokens", "4", "--context-budget", "192", "--context", ",".join(STRATEGIES),
        "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    group = json.loads(done.stdout)
    assert [row["strategy"] for row in group["runs"]] == list(STRATEGIES)
    runs = {row["strategy"]: row["run_id"] for row in group["runs"]}
    assert group["group_id"] == runs["none"]
    for row in group["runs"]:
        assert row["suggestions"] == row["points"] == POINTS
        assert row["mean_latency_ms"] > 0
    tokens = {row["strategy"]: row["prompt_tokens"] for row in group["runs"]}
    assert tokens["none"] < min(tokens["imports"], tokens["similar"]) <= tokens["both"]

    listed = json.loads(aixaudit("runs", "--json", env=env).stdout)
    assert {(run["id"], run["context"], run["group_id"]) for run in listed} == {
        (run_id, strategy, runs["none"]) for strategy, run_id in runs.items()
    }

    db = sqlite3.connect(Path(env["AIXAUDIT_DATA_DIR"]) / "aixaudit.db")

    def per_point(run_id: int) -> dict[tuple[str, str], int]:
        query = (
            "SELECT f.path, p.key, s.prompt_tokens FROM suggestions s"
            " JOIN points p ON p.id = s.point_id JOIN files f ON f.id = p.file_id"
            " WHERE s.run_id = ?"
        )
        return {(path, key): count for path, key, count in db.execute(query, (run_id,))}

    bare = per_point(runs["none"])
    for strategy in STRATEGIES[1:]:
        with_context = per_point(runs[strategy])
        assert with_context.keys() == bare.keys()  # the same points, asked again
        assert all(with_context[key] >= bare[key] for key in bare)
    # Every file that imports another of the repository got its signatures at each point.
    imports = per_point(runs["imports"])
    importers = {"shop/cart.py", "web/cart.js", "native/ring.c", "go/main.go"}
    assert all(imports[key] > bare[key] for key in bare if key[0] in importers)

    # `compare` pairs the group's runs point by point: what each strategy adds to `none`.
    totals = {row["strategy"]: row for row in group["runs"]}
    for strategy in STRATEGIES[1:]:
        compared = aixaudit("compare", str(runs["none"]), str(runs[strategy]), "--json", env=env)
        assert compared.returncode == 0, compared.stderr
        found = json.loads(compared.stdout)
        assert (found["pairs"], found["left_out_a"], found["left_out_b"]) == (POINTS, 0, 0)
        overall, *parts = found["groups"]
        assert (overall["grouping"], overall["pairs"]) == ("all", POINTS)
        languages = {part["key"] for part in parts if part["grouping"] == "language"}
        assert languages == {"python", "javascript", "c", "go"}
        metrics = {metric["metric"]: metric for metric in overall["metrics"]}
        a, b = totals["none"], totals[strategy]
        rate = metrics["acceptance_rate"]
        assert (rate["a"], rate["b"]) == pytest.approx((a["acceptance_rate"], b["acceptance_rate"]))
        assert rate["difference"] * POINTS == pytest.approx(
            overall["accepted_b_only"] - overall["accepted_a_only"]
        )
        assert 0.0 <= overall["mcnemar_p"] <= 1.0
        for name in ("exact_match", "es_rapidfuzz", "identifier_f1"):
            metric = metrics[name]
            assert metric["n"] == POINTS
            assert (metric["a"], metric["b"]) == pytest.approx(
                (a["metrics"][name], b["metrics"][name])
            )
            assert metric["difference"] == pytest.approx(metric["b"] - metric["a"])
            interval = metric["interval"]
            assert interval["low"] <= metric["difference"] <= interval["high"]
