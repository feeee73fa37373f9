"""A missed goal's `missed:` line sends the reader to a section of the docs: it must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How a cause names its section: `docs/performance.md, "Throughput: why 0.85 is not reached"`.
REFERENCE = re.compile(r'docs/([\w-]+\.md), "([^"]+)"')


def references() -> list[tuple[str, str, str]]:
    """(benchmark file, docs file, section) of every section a benchmark's text names."""
    found = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        # Adjacent literals are one constant in the tree, so a name split over lines is whole.
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in REFERENCE.finditer(node.value):
                    found.append((path.name, match.group(1), match.group(2)))
    return found


def headings(doc: str) -> set[str]:
    lines = (ROOT / "docs" / doc).read_text().splitlines()
    return {line.lstrip("#").strip() for line in lines if line.startswith("#")}


def test_the_benchmarks_name_their_causes_sections() -> None:
    # bench.api's and bench.email's causes, at least: a refactor that lost them fails here.
    assert {source for source, _, _ in references()} >= {"api.py", "email.py"}


def test_every_section_a_cause_names_is_a_heading_of_its_doc() -> None:
    missing = [
        f"{source} names {doc}, {section!r}"
        for source, doc, section in references()
        if section not in headings(doc)
    ]
    assert missing == []
