"""Run a Python program and count, per SSH peer, every remote session it opens.

`python -m bench.sessions OUT.json pyinfra_cli.main:main ARGS...` (or `orchestrator.cli.entry:run`
for patchring) patches paramiko below any tool, so both tools are counted the same way: every
SSH channel opened (a command, an sftp/scp subsystem) and every file sent or fetched over one,
and, when pyinfra is in the process, every fact it read (by fact and arguments). Writes the
counts to OUT.json at exit; the program's own exit code is kept.
"""

from __future__ import annotations

# Both tools' own commands patch with gevent before anything imports paramiko (its transport
# threads must be greenlets): so must this wrapper, or it would slow down what it measures.
from gevent import monkey

monkey.patch_all()

import atexit  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import paramiko  # noqa: E402
from paramiko.sftp_client import SFTPClient  # noqa: E402

channels: Counter[str] = Counter()
transfers: Counter[str] = Counter()
facts: Counter[str] = Counter()


def _peer(transport: Any) -> str:
    try:
        return str(transport.getpeername()[0])
    except (OSError, AttributeError, IndexError):
        return "?"


def _patch() -> None:
    open_channel = paramiko.Transport.open_channel

    def counted_channel(self: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
        channels[_peer(self)] += 1
        return open_channel(self, *args, **kwargs)

    paramiko.Transport.open_channel = counted_channel  # type: ignore[method-assign]

    def counted_transfer(original: Callable[..., Any]) -> Callable[..., Any]:
        def transfer(self: SFTPClient, *args: Any, **kwargs: Any) -> Any:
            channel = self.get_channel()
            transfers[_peer(channel.get_transport()) if channel else "?"] += 1
            return original(self, *args, **kwargs)

        return transfer

    SFTPClient.putfo = counted_transfer(SFTPClient.putfo)  # type: ignore[method-assign]
    SFTPClient.getfo = counted_transfer(SFTPClient.getfo)  # type: ignore[method-assign]

    from pyinfra.api import facts as pyinfra_facts

    get_fact = pyinfra_facts._get_fact

    def counted_fact(
        state: Any, host: Any, cls: Any, args: Any = None, kwargs: Any = None, *rest: Any
    ) -> Any:
        facts[f"{cls.name} {sorted((kwargs or {}).items())}{list(args or [])}"] += 1
        return get_fact(state, host, cls, args, kwargs, *rest)

    pyinfra_facts._get_fact = counted_fact


def main() -> None:
    out, target, *argv = sys.argv[1:]
    _patch()

    def write() -> None:
        doc = {"channels": channels, "transfers": transfers, "facts": facts}
        with open(out, "w") as handle:
            json.dump(doc, handle, indent=1, sort_keys=True)

    atexit.register(write)
    module_name, _, func_name = target.partition(":")
    sys.argv = [module_name, *argv]
    module = importlib.import_module(module_name)
    raise SystemExit(getattr(module, func_name or "main")())


if __name__ == "__main__":
    main()
