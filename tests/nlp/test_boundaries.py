"""The nlp package stays a pure library, and the command line stays quick to start."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_nlp_imports_no_other_wing() -> None:
    forbidden = {"bot", "storage", "console", "minyi"}
    for path in (ROOT / "nlp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_command_registration_loads_no_heavy_library() -> None:
    code = (
        "import sys, argparse; from minyi.commands import nlp; "
        "nlp.register(argparse.ArgumentParser().add_subparsers()); "
        "print(sorted(m for m in ('sklearn', 'jieba', 'numpy', 'scipy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"
