"""Every operation spec the compiler can emit names a real pyinfra operation whose signature
accepts its arguments (checked with inspect.signature, no hosts)."""

from __future__ import annotations

import inspect

from orchestrator.compiler import compile_host
from orchestrator.engine.operations import OPERATIONS
from tests.unit.builders import reference_state


def test_every_spec_binds_to_its_pyinfra_operation() -> None:
    ops = compile_host(reference_state())
    assert {op.operation for op in ops} >= {"apt.packages", "files.put", "systemd.service"}
    for op in ops:
        func = OPERATIONS[op.operation]
        args = dict(op.args)
        if op.content is not None or op.fetch_url is not None:
            args["src"] = "in-memory"
        inspect.signature(getattr(func, "_inner", func)).bind(**args)


def test_operation_table_names_real_pyinfra_operations() -> None:
    for name, func in OPERATIONS.items():
        module, _, function = name.partition(".")
        assert func.__module__ == f"pyinfra.operations.{module}"
        assert func.__name__ == function
