"""The dependency arrows of DESIGN.md: `benchmark` never imports methods, tasks or the leaderboard."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LEAF_PACKAGES = {"methods", "tasks", "leaderboard"}


def test_library_imports_no_leaf_folder() -> None:
    offenders = []
    files = sorted((REPO_ROOT / "benchmark").rglob("*.py"))
    assert files, "no library files found"
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] in LEAF_PACKAGES
            ]
    assert offenders == []


def test_cli_help_starts_without_torch() -> None:
    """`hmu --help` must stay fast: no subcommand module may import torch at import time."""
    code = (
        "import sys; from benchmark.cli.main import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
