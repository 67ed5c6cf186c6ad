"""The README's "Layout" cannot go stale: every module and package of aixaudit is listed, each
subpackage's line names its modules, and nothing listed is gone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aixaudit"
# A listed name: a module (x.py) or a folder (x/) at a line's start or after a gap of 2 spaces.
ENTRY = re.compile(r"(?:^|(?<=\s\s))([\w.]+(?:\.py|/))(?=\s|$)")


@dataclass
class Entry:
    name: str
    parent: str  # "" at the top, "aixaudit/" inside it
    about: str


def layout() -> list[Entry]:
    """The entries of the code block under "## Layout", with what the README says of each."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1]
    block = section.split("```", 2)[1]
    entries: list[Entry] = []
    parent = ""
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        found = list(ENTRY.finditer(line))
        if not found or (indent > 2 and found[0].start() != indent):
            if entries:  # a description going on from the line above
                entries[-1].about += " " + line.strip()
            continue
        if indent == 0:
            parent = ""
        for i, match in enumerate(found):
            end = found[i + 1].start() if i + 1 < len(found) else len(line)
            about = line[match.end() : end].strip()
            entries.append(Entry(match.group(1), parent, about))
        if indent == 0 and found[0].group(1) == "aixaudit/":
            parent = "aixaudit/"
    return entries


def modules(package: Path) -> set[str]:
    """The package's modules (x.py) and subpackages (x/), as the layout names them."""
    names = {path.name for path in package.glob("*.py") if path.name != "__init__.py"}
    return names | {f"{path.parent.name}/" for path in package.glob("*/__init__.py")}


def test_the_layout_lists_every_module_of_the_package() -> None:
    listed = {entry.name for entry in layout() if entry.parent == "aixaudit/"}
    assert modules(PACKAGE) - listed == set(), "add these to the README's Layout"


def test_everything_the_layout_lists_exists() -> None:
    missing = [
        entry.parent + entry.name
        for entry in layout()
        if not (ROOT / entry.parent / entry.name).exists()
    ]
    assert missing == [], "gone or renamed: update the README's Layout"


def test_each_subpackage_line_names_its_modules() -> None:
    for entry in layout():
        package = ROOT / entry.parent / entry.name
        if entry.parent and (package / "__init__.py").exists():
            words = set(re.findall(r"\w+", entry.about))
            unnamed = {name.removesuffix(".py").rstrip("/") for name in modules(package)} - words
            assert unnamed == set(), f"{entry.name} in the README's Layout does not name these"


def test_the_reader_sees_what_the_check_sees() -> None:
    """The parse itself: a few entries as the README writes them."""
    found = {entry.parent + entry.name: entry.about for entry in layout()}
    assert "aixaudit/config.py" in found and "aixaudit/errors.py" in found  # two on one line
    assert "tests/" in found and "aixaudit/tests/" not in found
    assert "aixaudit/span_queries/" not in found  # named in a description, not an entry
