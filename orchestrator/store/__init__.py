"""The run history (one JSON record per run) and crash-safe file writing.

The only package that reads or writes the history's files. Imports the standard library, pydantic,
`model` and `errors`; never the CLI, the report renderers, pyinfra or testinfra.
"""

from __future__ import annotations

from orchestrator.store.atomic import write_atomic
from orchestrator.store.runs import (
    RUN_ID,
    RUNS_FOLDER,
    RunStore,
    RunSummary,
    StoreError,
    UnreadableRecordError,
    dump_record,
    summarize_record,
)

__all__ = [
    "RUNS_FOLDER",
    "RUN_ID",
    "RunStore",
    "RunSummary",
    "StoreError",
    "UnreadableRecordError",
    "dump_record",
    "summarize_record",
    "write_atomic",
]
