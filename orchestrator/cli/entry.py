"""Console entry point. gevent must patch sockets before paramiko or pyinfra are imported, so
that hosts are reached in parallel (pyinfra's greenlets otherwise run one after another); so this
module imports nothing else until it has patched. `--version` and `--help` without a command
reach no host and skip the patch, which alone costs a tenth of a second.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

UNPATCHED = frozenset({"worker", "validate"})
"""Commands that must not patch: a Temporal worker's SDK runs native threads and an asyncio
loop (its host steps run in real threads, one host at a time); `validate` reaches no host and
forks workers over a large fleet (`policy.forked`), which gevent's fork and waitpid would
serve through its hub."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run() -> NoReturn:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command is not None and command not in UNPATCHED:
        from gevent import monkey

        monkey.patch_all()
    signal.signal(signal.SIGTERM, _on_sigterm)
    from orchestrator.cli.main import main

    code = main()
    if "temporalio" in sys.modules:  # its native runtime may crash at interpreter exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
