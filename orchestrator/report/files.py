"""Every rendering of a run record, written next to it: `<id>.html`, `.junit.xml`, `.md`, `.json`.

The only report module that writes files, each one atomically through `store.write_atomic` (a
reader never sees half a report). Rendering stays in the pure renderers; this module only
places their text. Never imports the CLI.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.model.record import RunRecord
from orchestrator.report.html import render_html
from orchestrator.report.junit import render_junit
from orchestrator.report.markdown import render_markdown
from orchestrator.report.masking import Mask, mask_record, no_mask
from orchestrator.store import StoreError, dump_record, write_atomic

SUFFIXES = {"html": ".html", "junit": ".junit.xml", "markdown": ".md", "json": ".json"}


def render_reports(record: RunRecord, mask: Mask = no_mask) -> dict[str, str]:
    """Each format's text (pure). The JSON is the record itself, masked like the others."""
    return {
        "html": render_html(record, mask),
        "junit": render_junit(record, mask),
        "markdown": render_markdown(record, mask),
        "json": dump_record(mask_record(record, mask)),
    }


def write_reports(record: RunRecord, folder: Path, mask: Mask = no_mask) -> dict[str, Path]:
    """Write every format to `folder` (created if needed); format name -> path written.

    In the history folder `<id>.json` is the saved record itself, rewritten with the same bytes
    (or masked, when `mask` knows secrets the record still holds)."""
    written = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in render_reports(record, mask).items():
            path = folder / f"{record.id}{SUFFIXES[name]}"
            write_atomic(path, text.encode("utf-8"))
            written[name] = path
    except OSError as exc:
        raise StoreError(
            f"could not write the reports of run {record.id} in {folder}: {exc.strerror or exc}",
            hint=f"`patchring report {record.id}` renders them again once the folder is writable",
        ) from exc
    return written
