"""Message of the day: a small example of a deploy that policies call with arguments."""

from __future__ import annotations

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files


@deploy("Message of the day")
def configure_motd(message: str, mode: str = "644") -> None:
    """Write /etc/motd. In-memory content, so pyinfra's per-file-name cache never serves a stale
    copy when several hosts get different messages in one run."""
    files.put(
        name="Write /etc/motd",
        src=StringIO(message.rstrip("\n") + "\n"),
        dest="/etc/motd",
        user="root",
        group="root",
        mode=mode,
    )
