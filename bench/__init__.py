"""Benchmarks: figures and ratios against the tools users would pick instead, side by side."""

from __future__ import annotations

import compileall
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def compile_project() -> None:
    """Compile the package's bytecode, as pip does for a regular install (pyinfra's and every
    other library's is compiled), so start-up is not measured compiling from source where
    PYTHONDONTWRITEBYTECODE is set or sources changed since the editable install."""
    for folder in ("orchestrator", "deploys", "bench"):
        compileall.compile_dir(PROJECT / folder, quiet=1)
