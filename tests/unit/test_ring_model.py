"""Ring settings in the inventory: defaults, durations, the example fleet, and every mistake
reported at file:line:col in plain words (pinned verbatim)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.inventory import load_inventory
from orchestrator.model.ring import (
    FailureBudget,
    Gate,
    HealthCheck,
    MaintenanceWindow,
    RingSettings,
    format_duration,
    parse_duration,
)
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.policy.schema import inventory_json_schema

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> WorktreeSource:
    path = tmp_path / "inventory" / "rings.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_inventory(load(tmp_path, text))
    return [str(d) for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        (" 5s ", timedelta(seconds=5)),
        ("0s", timedelta(0)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30x", "'30x' is not a duration (like 90s, 30m, 2h or 1d)"),
        ("-5m", "'-5m' is not a duration (like 90s, 30m, 2h or 1d)"),
        ("", "'' is not a duration (like 90s, 30m, 2h or 1d)"),
        ("5 m", "'5 m' is not a duration (like 90s, 30m, 2h or 1d)"),
        (30, "'30' has no unit (like 30s, 30m, 30h or 30d)"),
        (True, "expected a duration like 30m, got a boolean"),
        (1.5, "expected a duration like 30m, got a number"),
    ],
)
def test_parse_duration_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=1, minutes=5), "1d5m"),
    ],
)
def test_format_duration_reads_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_defaults_keep_a_plain_rollout() -> None:
    settings = RingSettings()
    assert settings.batches == ("100%",)
    assert settings.failure_budget == FailureBudget(max_failed=None, max_failed_percent=None)
    assert settings.gate == Gate(min_pass_rate=100, no_new_failures=False, min_hosts=1)
    assert (settings.soak, settings.approval, settings.auto_rollback) == (
        timedelta(0),
        False,
        False,
    )
    assert settings.windows == ()


def test_settings_dump_as_users_write_them() -> None:
    settings = RingSettings.model_validate(
        {"batches": [1, "25%", "3"], "soak": "1h30m", "gate": {"health_checks": []}}
    )
    assert settings.batches == (1, "25%", 3)
    dumped = settings.model_dump(mode="json")
    assert (dumped["batches"], dumped["soak"]) == ([1, "25%", 3], "1h30m")
    assert RingSettings.model_validate(dumped) == settings


def test_health_check_defaults_and_window_zone() -> None:
    check = HealthCheck(name="up", command="true")
    assert (check.timeout, check.retries, check.interval) == (
        timedelta(seconds=10),
        0,
        timedelta(seconds=5),
    )
    window = MaintenanceWindow(start="22:00", end="04:00")
    assert (window.days[0], window.days[-1], window.zone.key) == ("mon", "sun", "UTC")


def test_the_example_fleet_rings(tmp_path: Path) -> None:
    inventory = load_inventory(WorktreeSource(REPO), "inventory/fleet.yml")
    canary, pilot, broad = inventory.rings
    assert canary.batches == (1,)
    assert canary.failure_budget.max_failed == 0
    assert [check.name for check in canary.gate.health_checks] == ["agent-active"]
    assert pilot.batches == ("50%", "100%")
    assert broad.batches == (1, "25%", "100%")
    assert broad.windows[0].end == "24:00"
    assert all(ring.soak == timedelta(0) and not ring.approval for ring in inventory.rings)
    assert inventory.ring_settings("broad") is broad
    assert inventory.ring_settings("(no ring)") == RingSettings()


def test_settings_reach_the_merged_ring(tmp_path: Path) -> None:
    text = (
        "rings:\n"
        "  - name: canary\n"
        "    batches: [2]\n"
        "    soak: 30m\n"
        "    approval: true\n"
        "    auto_rollback: true\n"
        "    windows: [{days: [fri], start: '22:00', end: '04:00', timezone: Europe/Berlin}]\n"
    )
    ring = load_inventory(load(tmp_path, text)).rings[0]
    assert (ring.batches, ring.soak, ring.approval, ring.auto_rollback) == (
        (2,),
        timedelta(minutes=30),
        True,
        True,
    )
    assert ring.windows == (
        MaintenanceWindow(days=("fri",), start="22:00", end="04:00", timezone="Europe/Berlin"),
    )


BAD_SETTINGS = """\
rings:
  - name: canary
    batches: [1, "25%", 0, "150%", abc, true]
    failure_budget: {max_failed: -1, max_failed_percent: 120}
    gate:
      min_pass_rate: 101
      min_host: 2
      health_checks:
        - name: agent
          command: systemctl is-active acme-agent
          http: "http://{{ host.address }}/"
        - name: page
          http: "ftp://x"
        - name: probe
          command: "true"
          expect_status: 200
        - name: slow
          command: "true"
          timeout: 0s
          interval: 5
          retries: -1
    soak: 30x
    approval: maybe
    windows:
      - days: [mon, tuesday]
        start: 22:00
        end: "25:00"
        timezone: Europe/Berln
      - start: "10:00"
        end: "10:00"
      - days: []
        start: "24:00"
        end: "01:00"
      - {start: "01:00", end: "02:00", timezone: "../etc"}
  - name: pilot
    batches: []
    soak: 90
    gate: {health_checks: [{name: bad name, command: x}]}
"""


def test_every_mistake_in_ring_settings_is_located(tmp_path: Path) -> None:
    assert problems(tmp_path, BAD_SETTINGS) == [
        "inventory/rings.yml:3:25: error: a batch needs at least 1 host, got 0",
        "inventory/rings.yml:3:28: error: '150%' is not a percentage above 0% and at most 100%",
        "inventory/rings.yml:3:36: error: 'abc' is not a batch size "
        '(a host count like 5 or a percentage like "25%")',
        "inventory/rings.yml:3:41: error: expected a host count or a percentage "
        'like "25%", got a boolean',
        "inventory/rings.yml:4:34: error: must be greater than or equal to 0, got -1",
        "inventory/rings.yml:4:58: error: must be less than or equal to 100, got 120",
        "inventory/rings.yml:6:22: error: must be less than or equal to 100, got 101",
        "inventory/rings.yml:7:7: error: unknown key 'min_host' (did you mean 'min_hosts'?)",
        "inventory/rings.yml:9:11: error: set exactly one of command or http",
        "inventory/rings.yml:13:17: error: 'ftp://x' is not an http:// or https:// URL",
        "inventory/rings.yml:14:11: error: expect_status applies to http checks only",
        "inventory/rings.yml:19:20: error: a timeout must be longer than 0s",
        "inventory/rings.yml:20:21: error: '5' has no unit (like 5s, 5m, 5h or 5d)",
        "inventory/rings.yml:21:20: error: must be greater than or equal to 0, got -1",
        "inventory/rings.yml:22:11: error: '30x' is not a duration (like 90s, 30m, 2h or 1d)",
        "inventory/rings.yml:23:15: error: 'maybe' is not a boolean",
        "inventory/rings.yml:25:21: error: expected 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' "
        "or 'sun', got 'tuesday' (did you mean 'tue'?)",
        'inventory/rings.yml:26:16: error: expected a string, got a number (quote it: "22:00")',
        "inventory/rings.yml:27:14: error: '25:00' is not a time of day (like \"22:00\")",
        "inventory/rings.yml:28:19: error: unknown time zone 'Europe/Berln' "
        "(did you mean 'Europe/Berlin'?)",
        "inventory/rings.yml:29:9: error: a window must not start and end at the same time "
        '(all day: "00:00" to "24:00")',
        "inventory/rings.yml:31:15: error: list at least one day "
        "(mon, tue, wed, thu, fri, sat, sun)",
        "inventory/rings.yml:34:50: error: unknown time zone '../etc'",
        'inventory/rings.yml:36:14: error: list at least one batch size (like [1, "25%", "100%"])',
        "inventory/rings.yml:37:11: error: '90' has no unit (like 90s, 90m, 90h or 90d)",
        "inventory/rings.yml:38:35: error: 'bad name' is not a valid name "
        "(letters, digits, _ . + -; starting with a letter or digit)",
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            '{start: "24:00", end: "02:00"}',
            'inventory/rings.yml:3:15: error: a window cannot start at 24:00 (write "00:00")',
        ),
        (
            "{start: '1:00', end: '02:00'}",
            "inventory/rings.yml:3:23: error: '1:00' is not a time of day (like \"22:00\")",
        ),
        (
            "{start: '01:00', end: '02:00', timezone: Europe}",
            "inventory/rings.yml:3:56: error: unknown time zone 'Europe' "
            "(did you mean 'Europe/Rome'?)",
        ),
    ],
)
def test_window_mistakes(tmp_path: Path, window: str, message: str) -> None:
    text = f"rings:\n  - name: broad\n    windows: [{window}]\n"
    assert problems(tmp_path, text) == [message]


def test_health_check_names_are_unique_within_a_ring(tmp_path: Path) -> None:
    text = (
        "rings:\n"
        "  - name: canary\n"
        "    gate:\n"
        "      health_checks:\n"
        "        - {name: up, command: 'true'}\n"
        "        - {name: page, http: 'http://{{ host.address }}/'}\n"
        "        - {name: up, command: 'false'}\n"
        "  - name: pilot\n"
        "    gate: {health_checks: [{name: up, command: 'true'}]}\n"
    )
    assert problems(tmp_path, text) == [
        "inventory/rings.yml:7:18: error: duplicate health check 'up' "
        "(first defined at inventory/rings.yml:5:18)"
    ]


def test_inventory_schema_describes_ring_settings() -> None:
    defs = inventory_json_schema()["$defs"]
    ring = defs["RingEntry"]["properties"]
    assert {"batches", "failure_budget", "gate", "soak", "approval", "windows"} <= set(ring)
    assert ring["soak"]["type"] == "string"
    assert defs["MaintenanceWindow"]["properties"]["days"]["items"]["enum"][0] == "mon"
