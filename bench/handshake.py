"""The SSH handshake alone: connect and authenticate to every host of an inventory, as the
engine does (paramiko under gevent, the same key and known_hosts, TCP_NODELAY), then close.

`python -m bench.handshake REPO` prints one JSON line: hosts, and the CPU seconds this process
spent on the handshakes alone (its own getrusage before and after, so start-up and imports are
not counted). `bench.noop_apply` subtracts this from an apply's CPU to say what is left.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as the `patchring` entry point does, before paramiko is imported

import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import paramiko  # noqa: E402

from orchestrator.model.desired import HostTarget  # noqa: E402
from orchestrator.policy import WorktreeSource, load_project  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _handshake(target: HostTarget) -> None:
    client = paramiko.SSHClient()
    if target.known_hosts:
        client.load_host_keys(target.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((target.address, target.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(
        target.address,
        port=target.port,
        username=target.user,
        key_filename=target.identity_file,
        allow_agent=False,
        look_for_keys=False,
        sock=sock,
        timeout=10,
    )
    client.close()


def main() -> None:
    project = load_project(WorktreeSource(Path(sys.argv[1])), "inventory")
    targets = [state.host for state in project.desired.values()]
    paramiko.SSHClient()  # first use of the classes outside the measured part
    before = _cpu()
    gevent.joinall([gevent.spawn(_handshake, t) for t in targets], raise_error=True)
    print(json.dumps({"hosts": len(targets), "cpu": _cpu() - before}))


if __name__ == "__main__":
    main()
