"""The package's rooms and the one-way dependencies between them (STYLE.md): a module imports only from the
rooms below it or beside it, never back up the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "onnx_share"
ROOT_MODULES = {"__init__", "__main__", "_version", "api", "config", "errors"}
# room -> the rooms it may import from (besides itself, errors and _version)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "numerics": set(),
    "config": {"numerics"},
    "report": set(),
    "io": {"numerics"},
    "ir": {"io", "numerics", "config", "report"},
    "check": {"io", "numerics", "config", "report"},
    "calibration": {"check", "ir", "io", "numerics"},
    "passes": {"calibration", "ir", "io", "numerics", "config", "report"},
    "targets": {"check", "io", "config", "report"},
    "budget": {"passes", "calibration", "check", "ir", "io", "numerics", "config", "report"},
    "api": {"budget", "passes", "calibration", "ir", "io", "numerics", "config", "report", "check", "targets"},
    "cli": {"api", "budget", "passes", "calibration", "ir", "io", "numerics", "config", "report", "check", "targets"},
    "__init__": {"api", "config", "io", "check"},
    "__main__": {"cli"},
}


def _room(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "onnx_share" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    room = _room(path)
    allowed = ALLOWED[room] | {room, "errors", "_version"}
    extra = _imported_rooms(path) - allowed
    assert not extra, f"{path.relative_to(PACKAGE)} imports from {extra}"


def test_package_root_holds_the_face_only() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} <= ROOT_MODULES
    assert len(list(PACKAGE.glob("*.py"))) <= 7


@pytest.mark.parametrize("init", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_every_room_says_its_job(init: Path) -> None:
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert docstring, f"{init.parent.name}/__init__.py has no docstring"
    assert docstring.rstrip().count(". ") == 0 and docstring.rstrip().endswith("."), "one sentence"
