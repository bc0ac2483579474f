"""Where output goes: results on stdout, progress and messages on stderr.

Every text and document passes through the command's one `Masker` here: `protect` teaches it
the secrets of each project a command loads (see `cli.project.load`), and `show` masks a
structured value (plans, results, records) before it is rendered as text or JSON, so a diff
that shows a secret is hidden whole and a short secret is masked where it is a whole value.
Rich draws progress only on a terminal; in CI (no terminal, or --json) output stays plain, and
rich is not even imported until a note or a progress bar needs it (it costs a tenth of a second
of start-up).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator.secrets import Masker

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


@dataclass
class Output:
    json_mode: bool = False
    masker: Masker = field(default_factory=Masker)

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    def protect(self, secrets: Iterable[str]) -> None:
        """Mask these secrets too, in everything output from now on."""
        self.masker = self.masker.extended(secrets)

    def mask(self, text: str) -> str:
        """`text` with every secret known so far masked (for files and the ledger)."""
        return self.masker(text)

    def masked(self, value: T) -> T:
        """A copy of a structured value with every secret known so far masked."""
        return self.masker.value(value)

    def show(self, value: T, text: Callable[[T], str], document: Callable[[T], Any]) -> None:
        """Mask `value`, then print it as text for people or as a JSON document (--json)."""
        value = self.masked(value)
        if self.json_mode:
            self.document(document(value))
        else:
            self.text(text(value))

    def text(self, text: str) -> None:
        sys.stdout.write(self.masker(text))
        sys.stdout.flush()

    def document(self, doc: Any) -> None:
        text = json.dumps(self.masker.value(doc), indent=2, sort_keys=False, default=str)
        sys.stdout.write(self.masker(text) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        if self.interactive:
            self.err.print(self.masker(message), markup=False)
        elif not self.json_mode:
            self.error(message)

    def error(self, message: str) -> None:
        sys.stderr.write(self.masker(message).rstrip("\n") + "\n")
        sys.stderr.flush()

    @property
    def interactive(self) -> bool:
        return not self.json_mode and sys.stderr.isatty()

    @contextmanager
    def progress(self, title: str, total: int) -> Iterator[Any]:
        """Yields a `(host, status)` callback; draws a bar only on a terminal."""
        if not self.interactive:
            yield None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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
