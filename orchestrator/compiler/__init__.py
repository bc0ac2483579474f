"""Desired state in, ordered pyinfra operation specs out. Pure: imports no pyinfra.

`compile_host` is the entry point; `opspec` holds the data it returns.
"""

from orchestrator.compiler.compile import compile_host
from orchestrator.compiler.opspec import OpSpec

__all__ = ["OpSpec", "compile_host"]
