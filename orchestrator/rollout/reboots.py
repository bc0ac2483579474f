"""After a batch is applied: restart services on deleted libraries, reboot the hosts that
need it (at most `max_rebooting` at once, inside the ring's maintenance windows), and wait for
each to come back, before the batch is verified.

Every step is written to the ledger before it is attempted (`reboot started`, `restart
started`) and its outcome after (`completed` with how long the host took, `timed-out`,
`restarted`, `failed`); what the ring does not ask for is recorded as `needed` and so reported.
A host whose reboot timed out counts against the failure budget as unreachable (the
conductor's `_failures`). Decisions come from `rollout.restarts`; remote commands go through
`engine.run_on_hosts`. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.engine import run_on_hosts
from orchestrator.model.desired import DesiredState, HostTarget
from orchestrator.model.record import RestartEvent
from orchestrator.model.results import HostResult
from orchestrator.model.ring import RingSettings
from orchestrator.rollout.restarts import (
    BOOT_ID_COMMAND,
    RESTART_PROBE,
    RestartNeeds,
    decide_reboot,
    parse_restart_probe,
    reboot_waves,
    restart_command,
    stale_services,
    system_is_up,
)
from orchestrator.rollout.windows import next_window_start, window_open
from orchestrator.store.ledger import Ledger
from orchestrator.words import counted

REBOOT_COMMAND = "systemctl --no-block reboot"
POLL_EVERY = 2.0  # seconds between "is it back?" rounds
PENDING = ("waiting", "started")


@dataclass(frozen=True)
class AfterApply:
    """What the batch's hosts went through: a wait message when a reboot waits for a window
    (the batch stays unfinished, and the next run re-applies and continues it), and the hosts
    that did not come back."""

    waiting: str | None = None
    lost: tuple[str, ...] = ()


@dataclass
class RestartDriver:
    ledger: Ledger
    rollout_id: str
    ring: str
    batch: int
    settings: RingSettings
    now: Callable[[], datetime]
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    note: Callable[[str], None] = lambda text: None
    wait: bool = False
    emergency: str | None = None
    events: list[RestartEvent] = field(default_factory=list)

    def after_apply(
        self, fleet: dict[str, DesiredState], applied: dict[str, HostResult]
    ) -> AfterApply:
        pending = self._pending()
        hosts = [
            h
            for h in fleet
            if h in applied
            and (applied[h].status == "changed" or (h in pending and applied[h].status != "failed"))
        ]
        if not hosts:
            return AfterApply()
        targets = {h: fleet[h].host for h in hosts}
        needs = self._probe(targets)
        rebooting: list[str] = []
        for host, found in needs.items():
            decision = decide_reboot(self.settings.reboot, found)
            if decision.reboot:
                rebooting.append(host)
            elif decision.reason:
                self._record(host, "reboot", "needed", reason=decision.reason, found=found)
            elif pending.get(host, ("", ""))[0] == "reboot":
                self._record(host, "reboot", "completed", reason="back (seen on a later run)")
        self._restart({h: needs[h] for h in needs if h not in rebooting}, targets)
        if not rebooting:
            return AfterApply()
        return self._reboot(rebooting, targets, needs)

    # -- steps -----------------------------------------------------------------------------

    def _pending(self) -> dict[str, tuple[str, str]]:
        """Hosts whose latest reboot or restart in this ring is still waiting or started:
        a later run (after a window opened, or a kill) picks them up even if apply changed
        nothing this time."""
        latest: dict[str, tuple[str, str]] = {}
        for o in self.ledger.host_outcomes(self.rollout_id):
            if o.ring == self.ring and o.phase in {"reboot", "restart"}:
                latest[o.host] = (o.phase, o.status)
        return {h: s for h, s in latest.items() if s[1] in PENDING}

    def _probe(self, targets: dict[str, HostTarget]) -> dict[str, RestartNeeds]:
        timeout = min(t.command_timeout for t in targets.values())
        found = run_on_hosts(list(targets.values()), RESTART_PROBE, timeout, full_output=True)
        return {
            host: parse_restart_probe(output)
            for host, (ok, output) in found.items()
            if ok  # a host that did not answer is the verification's to report
        }

    def _restart(self, needs: dict[str, RestartNeeds], targets: dict[str, HostTarget]) -> None:
        by_command: dict[str, list[str]] = {}
        for host, found in needs.items():
            services = stale_services(found)
            command = restart_command(found)
            if command is None:
                continue
            if not self.settings.restart_services:
                self._record(host, "restart", "needed", found=found, services=services)
                continue
            self._record(host, "restart", "started", found=found, services=services)
            by_command.setdefault(command, []).append(host)
        for command, hosts in by_command.items():
            started = self.clock()
            chosen = [targets[h] for h in hosts]
            results = run_on_hosts(chosen, command, min(t.command_timeout for t in chosen))
            seconds = round(self.clock() - started, 3)
            after = self._probe({h: targets[h] for h in hosts})
            for host in hosts:
                ok, output = results[host]
                still = [s.unit for s in stale_services(after[host])] if host in after else []
                services = stale_services(needs[host])
                if ok and not still:
                    self._record(
                        host,
                        "restart",
                        "restarted",
                        found=needs[host],
                        services=services,
                        seconds=seconds,
                    )
                    self.note(f"{host}: restarted {', '.join(s.unit for s in services)}")
                else:
                    error = output if not ok else f"still on deleted files: {', '.join(still)}"
                    self._record(
                        host,
                        "restart",
                        "failed",
                        found=needs[host],
                        services=services,
                        seconds=seconds,
                        error=error,
                    )

    def _reboot(
        self, hosts: list[str], targets: dict[str, HostTarget], needs: dict[str, RestartNeeds]
    ) -> AfterApply:
        lost: list[str] = []
        waves = reboot_waves(hosts, self.settings.max_rebooting)
        for number, wave in enumerate(waves, 1):
            waiting = self._window(wave, needs)
            if waiting:
                return AfterApply(waiting=waiting, lost=tuple(lost))
            self.note(
                f"ring {self.ring}: rebooting {', '.join(wave)} "
                f"(wave {number}/{len(waves)}, at most {self.settings.max_rebooting} at once)"
            )
            lost += self._reboot_wave(wave, targets, needs)
        return AfterApply(lost=tuple(lost))

    def _window(self, wave: Sequence[str], needs: dict[str, RestartNeeds]) -> str | None:
        """A reboot happens inside the ring's windows: outside them the hosts are recorded
        `waiting`, and the message says when the next window opens (or, with --wait, the
        driver sleeps until then)."""
        windows = self.settings.windows
        while windows and not window_open(windows, self.now()):
            if self.emergency:
                self.note(f"ring {self.ring}: rebooting outside its windows; emergency")
                return None
            until = next_window_start(windows, self.now())
            for host in wave:
                reason = decide_reboot(self.settings.reboot, needs[host]).reason
                self._record(host, "reboot", "waiting", reason=reason, found=needs[host])
            opens = f"next opens {until:%F %H:%M %Z}" if until else "its windows never open"
            message = (
                f"ring {self.ring}: {counted(len(wave), 'host')} waiting to reboot outside "
                f"its maintenance windows; {opens}"
            )
            if not self.wait or until is None:
                return message
            self.note(message + "; waiting (--wait)")
            self.sleep(max(1.0, (until - self.now()).total_seconds()))
        return None

    def _reboot_wave(
        self, wave: Sequence[str], targets: dict[str, HostTarget], needs: dict[str, RestartNeeds]
    ) -> list[str]:
        reasons = {h: decide_reboot(self.settings.reboot, needs[h]).reason for h in wave}
        started_at = self.now()
        for host in wave:  # recorded before it is attempted: a kill leaves the truth
            self._record(
                host,
                "reboot",
                "started",
                reason=reasons[host],
                found=needs[host],
                started_at=started_at,
            )
        started = self.clock()
        chosen = [targets[h] for h in wave]
        run_on_hosts(chosen, REBOOT_COMMAND, min(t.connect_timeout for t in chosen) + 10)
        waiting = set(wave)
        deadline = started + self.settings.reboot_timeout.total_seconds()
        back: dict[str, float] = {}
        while waiting and self.clock() < deadline:
            self.sleep(POLL_EVERY)
            left = max(1.0, deadline - self.clock())
            answers = run_on_hosts(
                [targets[h] for h in sorted(waiting)], BOOT_ID_COMMAND, left, full_output=True
            )
            for host, (ok, output) in answers.items():
                if ok and system_is_up(output, needs[host].boot_id):
                    back[host] = round(self.clock() - started, 3)
                    waiting.discard(host)
        for host in wave:
            if host in back:
                self._record(
                    host,
                    "reboot",
                    "completed",
                    reason=reasons[host],
                    found=needs[host],
                    started_at=started_at,
                    seconds=back[host],
                )
                self.note(f"{host}: back after {back[host]:.0f} s")
            else:
                timeout = self.settings.reboot_timeout.total_seconds()
                self._record(
                    host,
                    "reboot",
                    "timed-out",
                    reason=reasons[host],
                    found=needs[host],
                    started_at=started_at,
                    seconds=timeout,
                    error=f"not back within {timeout:g} s (SSH and systemd running or degraded)",
                )
                self.note(f"{host}: not back within {timeout:g} s: counted as unreachable")
        return [h for h in wave if h not in back]

    def _record(
        self,
        host: str,
        kind: str,
        status: str,
        *,
        reason: str = "",
        found: RestartNeeds | None = None,
        services: Sequence[object] = (),
        started_at: datetime | None = None,
        seconds: float | None = None,
        error: str = "",
    ) -> None:
        units = tuple(getattr(s, "unit", str(s)) for s in services)
        packages: tuple[str, ...] = ()
        if found is not None:
            if kind == "reboot":
                packages = found.reboot_packages
            else:
                chosen = [s for s in found.services if s.unit in units]
                packages = tuple(sorted({p for s in chosen for p in s.packages}))
        if kind == "restart" and not reason:
            reason = "running deleted files of " + (", ".join(packages) or "upgraded packages")
        event = RestartEvent.model_validate(
            {
                "kind": kind,
                "status": status,
                "host": host,
                "ring": self.ring,
                "batch": self.batch,
                "reason": reason,
                "packages": packages,
                "services": units,
                "started_at": started_at,
                "seconds": seconds,
                "boot_id": found.boot_id if found is not None else "",
                "error": error,
            }
        )
        self.events.append(event)
        self.ledger.record_host(
            self.rollout_id,
            self.ring,
            self.batch,
            host,
            "reboot" if kind == "reboot" else "restart",
            status,
            event.model_dump_json(exclude_defaults=True),
        )
