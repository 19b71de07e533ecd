"""docs/SECURITY.md names, for each requirement, the test that checks it: every test it cites
exists, so a renamed or removed test shows up here rather than as a claim nobody checks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_every_cited_test_exists() -> None:
    text = (ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    missing = []
    current: Path | None = None
    # `tests/x.py::name`, `tests/dir/`, and `::other` continuing the previous file.
    for match in re.finditer(r"`(tests/[\w/.-]*)?(?:::(\w+))?`", text):
        cited, name = match.group(1), match.group(2)
        if cited:
            current = ROOT / cited
            if not current.exists():
                missing.append(cited)
                continue
        if name and current is not None and current.is_file() and name not in _defined(current):
            missing.append(f"{current.relative_to(ROOT)}::{name}")
    assert missing == []
