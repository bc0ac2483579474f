"""Exceptions on real hosts: a held package stays at its version through a rollout that upgrades
it everywhere else; a waived check is `waived` in every report; past its expiry (a controlled
date) the check fails again; and the exception-debt ceiling halts a gate."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import CliResult, commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

AUDIT_CHECK = """\
def test_audit_sign_off_is_on_the_host(host):
    assert host.file("/etc/acme/audit-approved").exists
"""


def run(repo: Path, *args: str, today: str) -> CliResult:
    """The CLI with exceptions evaluated as of `today`."""
    return patchring(repo, *args, env={"PATCHRING_TODAY": today})


def _exception(id_: str, hosts: list[str], expires: str, **what: object) -> dict[str, object]:
    return {
        "id": id_,
        **what,
        "select": {"hosts": hosts},
        "owner": "dana@example.com",
        "reason": "vendor sign-off pending",
        "ticket": "CHG0012345",
        "approved_by": "lee@example.com",
        "expires": expires,
    }


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> tuple[Path, dict[str, str]]:
    """The example on one host per ring, every host held at acme-agent 1.0-1 and converged."""
    chosen = {ring: lab.ring(ring)[0] for ring in ("canary", "pilot", "broad")}
    lab.reset(list(chosen.values()))
    dest = make_repo(tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3})
    inventory = dest / "inventory" / "lab.yml"
    data = yaml.safe_load(inventory.read_text())
    data["hosts"] = {name: data["hosts"][name] for name in chosen.values()}
    write_yaml(inventory, data)
    (dest / "checks").mkdir(exist_ok=True)
    (dest / "checks" / "test_audit.py").write_text(AUDIT_CHECK)
    write_yaml(
        dest / "policies" / "audit.yml",
        {"name": "audit", "select": {"all": True}, "checks": ["checks/test_audit.py"]},
    )
    everyone = list(chosen.values())
    write_yaml(
        dest / "exceptions" / "agent.yml",
        {
            "exceptions": [
                _exception(
                    "hold-agent",
                    everyone,
                    "2099-12-31",
                    hold={"package": "acme-agent", "version": "1.0-1"},
                ),
                _exception(
                    "waive-audit",
                    everyone,
                    "2026-12-31",
                    waive=["audit/checks/test_audit.py::*"],
                ),
            ]
        },
    )
    commit(dest, "hold the agent at 1.0-1 everywhere; waive the audit sign-off")
    applied = run(dest, "apply", "--json", today="2026-12-02")
    assert applied.code == 0, applied.stderr
    return dest, chosen


def _agent(lab: Lab, name: str) -> str:
    return str(host(lab.address(name), lab.ssh_config).package("acme-agent").version)


def test_a_held_host_stays_while_the_rollout_upgrades_the_others(
    repo: tuple[Path, dict[str, str]], lab: Lab
) -> None:
    dest, chosen = repo
    assert {_agent(lab, name) for name in chosen.values()} == {"1.0-1"}
    exceptions = yaml.safe_load((dest / "exceptions" / "agent.yml").read_text())
    exceptions["exceptions"][0]["select"] = {"hosts": [chosen["pilot"]]}
    write_yaml(dest / "exceptions" / "agent.yml", exceptions)
    commit(dest, "only pilot stays held")
    rolled = run(dest, "rollout", "--json", today="2026-12-02")
    assert rolled.code == 0, rolled.stderr + rolled.stdout
    record = rolled.json()
    assert [(r["ring"], r["status"]) for r in record["rings"]] == [
        ("canary", "passed"),
        ("pilot", "passed"),
        ("broad", "passed"),
    ]
    assert _agent(lab, chosen["pilot"]) == "1.0-1"
    assert _agent(lab, chosen["canary"]) == _agent(lab, chosen["broad"]) == "1.0-2"
    # the audit check really fails on every host, and every report says waived, not passed
    audits = [
        c
        for v in record["verify"]
        for c in v["results"]
        if c["check_id"].startswith("audit/checks/test_audit.py::")
    ]
    assert len(audits) == 3
    assert {(c["status"], c["real_status"], c["waived_by"]) for c in audits} == {
        ("waived", "failed", "waive-audit")
    }
    runs = dest / ".patchring" / "runs"
    markdown = (runs / f"{record['id']}.md").read_text()
    assert "#### Waived checks (3)" in markdown
    assert "waived by waive-audit (owner dana@example.com, until 2026-12-31, CHG0012345)" in (
        markdown
    )
    html = (runs / f"{record['id']}.html").read_text()
    assert "<h2>Waived checks" in html
    junit = ET.parse(runs / f"{record['id']}.junit.xml")
    cases = [c for c in junit.iter("testcase") if "test_audit.py" in (c.get("name") or "")]
    assert len(cases) == 3 and all(c.find("skipped") is not None for c in cases)
    saved = json.loads((runs / f"{record['id']}.json").read_text())
    assert "waived" in {c["status"] for v in saved["verify"] for c in v["results"]}

    # After its expiry the waiver no longer applies: the audit check fails again.
    later = run(dest, "verify", "--json", today="2027-01-01")
    assert later.code == 3, later.stderr
    after = [
        c for v in later.json()["verify"] for c in v["results"] if "test_audit.py" in c["check_id"]
    ]
    assert {c["status"] for c in after} == {"failed"}
    warned = run(dest, "validate", today="2027-01-01")
    assert warned.code == 0
    assert "exception 'waive-audit' expired on 2026-12-31 and no longer applies" in warned.stderr


def test_the_exception_debt_ceiling_halts_the_canary_gate(
    repo: tuple[Path, dict[str, str]], lab: Lab
) -> None:
    dest, chosen = repo
    fleet = dest / "inventory" / "fleet.yml"
    data = yaml.safe_load(fleet.read_text())
    data["rings"][0]["gate"]["max_exception_debt"] = 0
    write_yaml(fleet, data)
    commit(dest, "canary may carry no exception")
    rolled = run(dest, "rollout", "--json", today="2026-12-02")
    assert rolled.code == 3, rolled.stderr
    record = rolled.json()
    assert [(r["ring"], r["status"]) for r in record["rings"]][:2] == [
        ("canary", "failed"),
        ("pilot", "not-started"),
    ]
    canary = record["rings"][0]
    assert (
        f"exception debt: 1 of 1 host under an exception ({chosen['canary']}), more than "
        "max_exception_debt 0 allows (0)" in canary["reason"]
    )
