"""The driver lease as the conductor uses it: who this process is, whether a holder on this
machine is provably dead, the heartbeat that keeps the lease while long steps run, and how a
lease reads in `status`.

The lease itself (taken atomically, expiring) lives in the ledger; this module adds what only a
running process knows. Imports the standard library and `store.ledger`; never the CLI.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from orchestrator.store.ledger import Lease, LeaseHolder, LeaseLostError, Ledger, LedgerError

LEASE_TTL = timedelta(seconds=90)
"""How long a lease outlives its last heartbeat: a driver that stops beating (killed, frozen,
cut off from the ledger) is taken over this long after its last heartbeat."""
HEARTBEAT_EVERY = timedelta(seconds=15)


def this_process(operator: str) -> LeaseHolder:
    """A holder for this process, with a token no other process can have."""
    return LeaseHolder(
        token=secrets.token_hex(16),
        operator=operator,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        scope=process_scope(),
    )


def process_scope() -> str | None:
    """This boot of this machine and this pid namespace: a pid names the same process only
    within one scope (containers on one host share the boot but not the pids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/pid:{namespace}"


def holder_is_dead(holder: LeaseHolder) -> bool:
    """True only when provable: the holder ran in this process scope and its pid is gone.
    Anywhere else (another machine, an unknown scope, a reused pid) the lease must expire."""
    if holder.scope is None or holder.scope != process_scope():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class Heartbeat:
    """Renews the lease every `every` in a background thread (a greenlet once the CLI has let
    gevent patch threading), so a long apply, verify or soak does not let it expire. A lost
    lease is kept in `lost` for the driver's next step to raise; a ledger that is briefly away
    is retried (the driver's own next write reports it)."""

    def __init__(
        self, ledger: Ledger, rollout_id: str, token: str, ttl: timedelta, every: timedelta
    ) -> None:
        self.ledger, self.rollout_id, self.token = ledger, rollout_id, token
        self.ttl, self.every = ttl, every
        self.lost: LeaseLostError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="patchring-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        while not self._stop.wait(self.every.total_seconds()):
            try:
                self.ledger.renew_lease(self.rollout_id, self.token, self.ttl)
            except LeaseLostError as lost:
                self.lost = lost
                return
            except LedgerError:
                continue


def describe_driver(lease: Lease | None) -> str:
    """Who drives a `running` rollout, as `status` says it: a live driver, or a lost one and
    what to do about it."""
    resume = "run `patchring rollout` to resume"
    if lease is None:
        return f"no driver; {resume}"
    holder = lease.holder
    beat = _ago(lease.observed_at - lease.heartbeat_at)
    if lease.live and not holder_is_dead(holder):
        return (
            f"driven by {holder.display} since {lease.taken_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"last heartbeat {beat} ago"
        )
    return (
        f"driver lost: pid {holder.pid} on {holder.hostname}, last heartbeat {beat} ago; {resume}"
    )


def _ago(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
