"""Console entry point. gevent must patch sockets before paramiko or pyinfra are imported, so
that hosts are reached in parallel (pyinfra's greenlets otherwise run one after another); so this
module imports nothing else until it has patched. `--version` and `--help` without a command
reach no host and skip the patch, which alone costs a tenth of a second.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run() -> NoReturn:
    if any(not arg.startswith("-") for arg in sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
    signal.signal(signal.SIGTERM, _on_sigterm)
    from orchestrator.cli.main import main

    sys.exit(main())
