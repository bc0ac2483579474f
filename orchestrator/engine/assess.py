"""Run the patch assessment probe on a fleet: one remote command per host, raw output back.

`assess_hosts` connects through the engine's session, runs `patching.probescript`'s script on
every reachable host in parallel under one deadline per host, and returns the raw text (or why
there is none) per host. Parsing stays in the pure `patching` package. Nothing here prints.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import gevent
from paramiko import SSHException

from orchestrator.engine.session import FleetSession, HostLink, ProgressFn, open_session
from orchestrator.model.desired import HostTarget
from orchestrator.patching.probescript import PART_TIMEOUT, build_assess_script, script_timeout

RawStatus = Literal["ok", "unreachable", "failed"]


@dataclass(frozen=True)
class RawAssessment:
    """One host's probe: its output framed with `nonce`, or the reason there is none."""

    host: str
    ring: str | None
    status: RawStatus
    nonce: str
    output: str = ""
    error: str | None = None
    remote_commands: int = 0
    seconds: float = 0.0


def assess_hosts(
    targets: Sequence[HostTarget], refresh: bool, progress: ProgressFn | None = None
) -> dict[str, RawAssessment]:
    """Probe every target once (`refresh`: `apt-get update` first, in the same command)."""
    with open_session(targets, progress) as session:
        greenlets = {}
        found: dict[str, RawAssessment] = {}
        for target in targets:
            link = session.links[target.name]
            if link.error is not None:
                found[target.name] = _raw(link, "unreachable", "", error=link.error)
            else:
                greenlets[gevent.spawn(_probe, session, link, refresh)] = target.name
        for greenlet in gevent.iwait(list(greenlets)):
            name = greenlets[greenlet]
            found[name] = (
                greenlet.value
                if greenlet.successful()
                else _raw(session.links[name], "failed", "", error=f"{greenlet.exception}")
            )
            if progress:
                progress(name, found[name].status)
        return {target.name: found[target.name] for target in targets}


def _raw(
    link: HostLink,
    status: RawStatus,
    nonce: str,
    output: str = "",
    error: str | None = None,
    seconds: float = 0.0,
) -> RawAssessment:
    return RawAssessment(
        host=link.target.name,
        ring=link.target.ring,
        status=status,
        nonce=nonce,
        output=output,
        error=error,
        remote_commands=link.commands,
        seconds=round(seconds, 3),
    )


def _probe(session: FleetSession, link: HostLink, refresh: bool) -> RawAssessment:
    nonce = secrets.token_hex(8)
    limit = link.target.command_timeout
    refresh_timeout = limit if refresh else None
    script = build_assess_script(
        nonce, refresh_timeout, part_timeout=max(1, int(min(PART_TIMEOUT, limit)))
    )
    # Every part has its own `timeout` on the host, so a part that hangs is named in the
    # output; this deadline only catches a host that stops answering altogether.
    deadline = min(script_timeout(None), limit) + (limit + 5 if refresh else 0)
    started = time.monotonic()
    try:
        ok, out, err = session.run(link, script, deadline)
    except TimeoutError as error:
        return _raw(link, "failed", nonce, error=f"probe timed out: {error}")
    except (OSError, SSHException, EOFError) as error:
        return _raw(link, "unreachable", nonce, error=f"connection lost: {error}")
    elapsed = time.monotonic() - started
    if not ok:
        tail = " ".join((err or out).strip().splitlines()[-3:]) or "(no output)"
        return _raw(link, "failed", nonce, out, f"probe failed: {tail}", elapsed)
    return _raw(link, "ok", nonce, out, seconds=elapsed)
