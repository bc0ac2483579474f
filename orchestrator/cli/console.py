"""Where output goes: results on stdout, progress and messages on stderr.

Rich draws progress only on a terminal; in CI (no terminal, or --json) output stays plain.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@dataclass
class Output:
    json_mode: bool = False
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    def text(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def document(self, doc: Any) -> None:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        if not self.json_mode:
            self.err.print(message, markup=False)

    def error(self, message: str) -> None:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()

    @property
    def interactive(self) -> bool:
        return not self.json_mode and self.err.is_terminal

    @contextmanager
    def progress(self, title: str, total: int) -> Iterator[Any]:
        """Yields a `(host, status)` callback; draws a bar only on a terminal."""
        if not self.interactive:
            yield None
            return
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        )
        task = bar.add_task(title, total=total, last="")

        def advance(host: str, status: str) -> None:
            if status in {"connected"}:
                return
            bar.update(task, advance=1 if status != "applied" else 0, last=f"{host}: {status}")

        with bar:
            yield advance
