"""Reboot and restart decisions after apply, with no hosts: the probe's output read, the
reboot decided per ring setting, the cap cut into waves, a host counted back only on a new boot
with systemd up, the restart command chosen, the ring settings validated, and every reboot and
restart carried from the ledger into the record and its text; a reboot that timed out counts
against the failure budget as unreachable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.model.record import RestartEvent
from orchestrator.model.ring import RingSettings
from orchestrator.report.rollout_history import restart_events
from orchestrator.report.rollout_text import restart_lines
from orchestrator.rollout.conductor import Conductor
from orchestrator.rollout.decisions import budget_state
from orchestrator.rollout.reboots import RestartDriver
from orchestrator.rollout.restarts import (
    SECTION,
    RestartNeeds,
    StaleService,
    decide_reboot,
    parse_restart_probe,
    reboot_waves,
    restart_command,
    system_is_up,
)
from orchestrator.store.ledger import (
    NewRollout,
    PlannedRing,
    RolloutPlan,
    open_ledger,
)

LIB = "/usr/lib/x86_64-linux-gnu/libacme.so.1"


def probe_output(**parts: str) -> str:
    return "".join(f"{SECTION}{name}\n{text}\n" for name, text in parts.items())


SAMPLE = probe_output(
    boot_id="0f1e2d3c-aaaa-bbbb-cccc-000000000001",
    reboot_required="yes",
    reboot_packages="acme-kernel\nacme-kernel\n",
    deleted_maps=(
        f"/proc/412/maps:7f00-7f01 r-xp 00000000 00:2a 1234 {LIB} (deleted)\n"
        f"/proc/413/maps:7f00-7f01 r-xp 00000000 00:2a 1234 {LIB} (deleted)\n"
        "/proc/500/maps:7f00-7f01 rw-s 00000000 00:01 99 /memfd:pulse (deleted)\n"
        f"/proc/777/maps:7f00-7f01 r-xp 00000000 00:2a 1234 {LIB} (deleted)\n"
        "garbage line from a vanished process\n"
    ),
    cgroups=(
        "/proc/412/cgroup:0::/system.slice/acme-libuser.service\n"
        "/proc/413/cgroup:0::/system.slice/acme-libuser.service\n"
        "/proc/777/cgroup:0::/user.slice/user-0.slice/session-3.scope\n"
    ),
    owners=f"libacme1:amd64: {LIB}\n",
    needrestart="",
)


def test_probe_output_gives_flag_packages_services_and_owners() -> None:
    needs = parse_restart_probe(SAMPLE)
    assert needs.boot_id == "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
    assert needs.reboot_required is True
    assert needs.reboot_packages == ("acme-kernel",)
    assert needs.services == (
        StaleService(unit="acme-libuser.service", deleted_files=(LIB,), packages=("libacme1",)),
    )
    assert needs.unknown_processes == (777,)  # a session scope: not a service to restart
    assert needs.needrestart is False
    assert parse_restart_probe(probe_output(needrestart="/usr/sbin/needrestart")).needrestart


def test_probe_output_without_sections_is_a_host_needing_nothing() -> None:
    needs = parse_restart_probe("motd noise\n")
    assert needs == RestartNeeds(boot_id="")


FLAGGED = RestartNeeds(boot_id="b", reboot_required=True, reboot_packages=("acme-kernel",))
CLEAN = RestartNeeds(boot_id="b")


@pytest.mark.parametrize(
    ("mode", "needs", "reboot", "reason"),
    [
        ("never", CLEAN, False, ""),
        (
            "never",
            FLAGGED,
            False,
            "/run/reboot-required (acme-kernel); not rebooted (reboot: never)",
        ),
        ("if-required", CLEAN, False, ""),
        ("if-required", FLAGGED, True, "/run/reboot-required (acme-kernel)"),
        (
            "if-required",
            RestartNeeds(boot_id="b", reboot_required=True),
            True,
            "/run/reboot-required",
        ),
        ("always", CLEAN, True, "reboot: always"),
        ("always", FLAGGED, True, "reboot: always; /run/reboot-required (acme-kernel)"),
    ],
)
def test_reboot_decision_per_ring_setting(
    mode: str, needs: RestartNeeds, reboot: bool, reason: str
) -> None:
    decision = decide_reboot(mode, needs)  # type: ignore[arg-type]
    assert (decision.reboot, decision.reason) == (reboot, reason)


@pytest.mark.parametrize(
    ("hosts", "cap", "waves"),
    [
        (["a", "b", "c"], 1, [("a",), ("b",), ("c",)]),
        (["a", "b", "c"], 2, [("a", "b"), ("c",)]),
        (["a", "b"], 5, [("a", "b")]),
        ([], 2, []),
    ],
)
def test_reboot_waves_respect_the_cap(
    hosts: list[str], cap: int, waves: list[tuple[str, ...]]
) -> None:
    assert reboot_waves(hosts, cap) == waves
    assert all(len(wave) <= cap for wave in waves)


@pytest.mark.parametrize(
    ("output", "back"),
    [
        ("old-boot\nrunning\n", False),  # not rebooted yet: the same boot
        ("new-boot\nstarting\n", False),
        ("new-boot\nstopping\n", False),
        ("new-boot\nrunning\n", True),
        ("new-boot\ndegraded\n", True),
        ("", False),
        ("new-boot\n", False),
    ],
)
def test_host_is_back_on_a_new_boot_with_systemd_up(output: str, back: bool) -> None:
    assert system_is_up(output, "old-boot") is back


def test_restart_command_uses_needrestart_when_there_else_the_detected_units() -> None:
    services = (
        StaleService(unit="acme-libuser.service", deleted_files=(LIB,)),
        StaleService(unit="dbus.service", deleted_files=(LIB,)),  # never restarted alone
        StaleService(unit="it's.service", deleted_files=(LIB,)),
    )
    needs = RestartNeeds(boot_id="b", services=services)
    assert (
        restart_command(needs) == "systemctl restart -- acme-libuser.service 'it'\"'\"'s.service'"
    )
    with_tool = needs.model_copy(update={"needrestart": True})
    assert restart_command(with_tool) == "NEEDRESTART_SUSPEND=1 needrestart -r a -l -q"
    only_bus = RestartNeeds(boot_id="b", services=services[1:2])
    assert restart_command(only_bus) is None
    assert restart_command(CLEAN) is None


def test_ring_settings_default_to_reporting_and_validate_their_values() -> None:
    settings = RingSettings()
    assert (settings.reboot, settings.max_rebooting, settings.restart_services) == (
        "never",
        1,
        False,
    )
    assert settings.reboot_timeout == timedelta(minutes=10)
    chosen = RingSettings.model_validate(
        {"reboot": "if-required", "max_rebooting": 2, "reboot_timeout": "90s"}
    )
    assert chosen.reboot_timeout == timedelta(seconds=90)
    for bad in ({"reboot": "sometimes"}, {"max_rebooting": 0}, {"reboot_timeout": "0s"}):
        with pytest.raises(ValidationError):
            RingSettings.model_validate(bad)


def _ledger_with_rollout(tmp_path: Path):  # type: ignore[no-untyped-def]
    ledger = open_ledger(tmp_path / "ledger.db")
    ledger.__enter__()
    rollout = ledger.start_rollout(
        NewRollout(
            inventory_key="k",
            commit="0" * 40,
            started_by="t",
            plan=RolloutPlan(rings=(PlannedRing(name="canary", batches=(("a", "b"),)),)),
        )
    )
    return ledger, rollout


def test_reboot_events_go_from_the_ledger_into_the_record_and_its_text(tmp_path: Path) -> None:
    ledger, rollout = _ledger_with_rollout(tmp_path)
    started = datetime(2026, 5, 1, 22, 0, tzinfo=UTC)
    steps = [
        RestartEvent(kind="reboot", status="started", host="a", ring="canary", started_at=started),
        RestartEvent(
            kind="reboot",
            status="completed",
            host="a",
            ring="canary",
            reason="/run/reboot-required (acme-kernel)",
            packages=("acme-kernel",),
            started_at=started,
            seconds=12.5,
        ),
        RestartEvent(
            kind="restart",
            status="needed",
            host="b",
            ring="canary",
            services=("acme-libuser.service",),
            reason="running deleted files of libacme1",
        ),
    ]
    for event in steps:
        ledger.record_host(
            rollout.id, "canary", 0, event.host, event.kind, event.status, event.model_dump_json()
        )
    ledger.record_host(rollout.id, "canary", 0, "a", "apply", "changed", "{}")
    events = restart_events(ledger.host_outcomes(rollout.id))
    assert [(e.kind, e.host, e.status) for e in events] == [
        ("reboot", "a", "started"),
        ("reboot", "a", "completed"),
        ("restart", "b", "needed"),
    ]
    assert all(e.at is not None for e in events)
    lines = restart_lines(events)
    assert len(lines) == 2  # the started step is followed by its outcome
    assert lines[0].startswith("  reboot a (ring canary) completed at ")
    assert lines[0].endswith("after 12 s: /run/reboot-required (acme-kernel)")
    assert lines[1].startswith("  restart b (ring canary) acme-libuser.service needed")
    ledger.__exit__(None, None, None)


def test_a_reboot_that_timed_out_counts_against_the_budget_as_unreachable(
    tmp_path: Path,
) -> None:
    ledger, rollout = _ledger_with_rollout(tmp_path)
    for host in ("a", "b"):
        ledger.record_host(rollout.id, "canary", 0, host, "apply", "changed", "{}")
    lost = RestartEvent(kind="reboot", status="timed-out", host="b", ring="canary")
    ledger.record_host(rollout.id, "canary", 0, "b", "reboot", "started", "{}")
    ledger.record_host(rollout.id, "canary", 0, "b", "reboot", "timed-out", lost.model_dump_json())
    ledger.record_host(rollout.id, "canary", 0, "a", "reboot", "completed", "{}")
    conductor = Conductor(repo=tmp_path, inventory="inventory", ledger=ledger, operator="t")
    failures = conductor._failures(rollout.id, "canary")
    assert failures == {"b": "unreachable"}
    verdict = budget_state(2, failures, RingSettings().failure_budget)
    assert verdict.exceeded and verdict.unreachable == 1
    ledger.__exit__(None, None, None)


def test_a_reboot_outside_the_maintenance_windows_waits_and_is_recorded_waiting(
    tmp_path: Path,
) -> None:
    ledger, rollout = _ledger_with_rollout(tmp_path)
    settings = RingSettings.model_validate(
        {
            "reboot": "if-required",
            "windows": [{"days": ["sat"], "start": "22:00", "end": "23:00"}],
        }
    )
    friday_noon = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    driver = RestartDriver(ledger, rollout.id, "canary", 0, settings, now=lambda: friday_noon)
    message = driver._window(["a"], {"a": FLAGGED})
    assert message == (
        "ring canary: 1 host waiting to reboot outside its maintenance windows; "
        "next opens 2026-05-02 22:00 UTC"
    )
    (event,) = restart_events(ledger.host_outcomes(rollout.id))
    assert (event.host, event.kind, event.status) == ("a", "reboot", "waiting")
    assert event.reason == "/run/reboot-required (acme-kernel)"
    assert driver._pending() == {"a": ("reboot", "waiting")}  # the next run picks it up
    saturday_night = datetime(2026, 5, 2, 22, 30, tzinfo=UTC)
    inside = RestartDriver(ledger, rollout.id, "canary", 0, settings, now=lambda: saturday_night)
    assert inside._window(["a"], {"a": FLAGGED}) is None
    urgent = RestartDriver(
        ledger, rollout.id, "canary", 0, settings, now=lambda: friday_noon, emergency="CVE"
    )
    assert urgent._window(["a"], {"a": FLAGGED}) is None
    ledger.__exit__(None, None, None)
