"""The habits that keep the code readable: ruff's lint and formatter, and mypy, all clean (configured in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ["edgeweave", "tests", "benchmarks", "examples", "docs"]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    out = run("ruff", "check", "--output-format", "concise", *CODE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_code_is_as_ruff_formats_it():
    out = run("ruff", "format", "--check", *CODE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing_in_the_package():
    out = run("mypy")  # files, the plugin and the options: [tool.mypy] in pyproject.toml
    assert out.returncode == 0, out.stdout + out.stderr
