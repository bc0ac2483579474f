"""The rollout engine on a 10-host lab over three rings (1/3/6): batches, budgets, gates, soak,
approvals, windows, emergencies, a second rollout refused, rollback, and resume after a kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.lab import faults as lab_faults
from orchestrator.rollout.conductor import inventory_key
from orchestrator.store.ledger import open_ledger
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import break_canary, commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    return make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )


def set_rings(repo: Path, **settings: dict[str, Any]) -> None:
    """Replace the example's ring settings with the test's, committed: a rollout reads the
    rings, like the policies, from the commit it rolls out."""
    fleet = repo / "inventory" / "fleet.yml"
    data = yaml.safe_load(fleet.read_text())
    data["rings"] = [
        {"name": name, **settings.get(name, {})} for name in ("canary", "pilot", "broad")
    ]
    write_yaml(fleet, data)
    commit(repo, "ring settings for this test")


def pin_agent(repo: Path, version: str, rings: list[str] | None = None) -> None:
    """Pin acme-agent for some rings (ring vars) and offer the broken suite to them."""
    fleet = repo / "inventory" / "fleet.yml"
    data = yaml.safe_load(fleet.read_text())
    for ring in data["rings"]:
        if rings is None or ring["name"] in rings:
            ring["vars"] = {"agent_version": version}
    write_yaml(fleet, data)
    write_yaml(
        repo / "policies" / "broken-suite.yml",
        {
            "name": "broken-suite",
            "select": {"rings": rings or ["canary", "pilot", "broad"]},
            "apt_repositories": [
                {
                    "name": "patchring-lab-broken",
                    "url": "{{ lab_apt_url }}",
                    "suite": "broken",
                    "key": "{{ lab_apt_key }}",
                }
            ],
        },
    )


def KEY(repo: Path) -> str:
    return inventory_key(repo, "inventory")


def ledger(repo: Path) -> Any:
    return open_ledger(repo / ".patchring" / "ledger.db")


def installed(lab: Lab, name: str) -> str | None:
    package = host(lab.address(name), lab.ssh_config).package("acme-agent")
    return str(package.version) if package.is_installed else None


def dpkg_status(lab: Lab, name: str) -> str:
    query = "dpkg-query -W -f '${Status}' acme-agent 2>/dev/null || true"
    return str(host(lab.address(name), lab.ssh_config).run(query).stdout)


def test_batches_apply_in_order_and_the_rollout_completes(repo: Path, lab: Lab) -> None:
    set_rings(
        repo, canary={"batches": [1]}, pilot={"batches": [1, "100%"]}, broad={"batches": [2, "50%"]}
    )
    result = patchring(repo, "rollout", "--json")
    assert result.code == 0, result.stdout + result.stderr
    with ledger(repo) as book:
        (rollout,) = book.recent_rollouts(KEY(repo))
        assert rollout.status == "completed"
        batches = [[len(b) for b in r.batches] for r in rollout.plan.rings]
        assert batches == [[1], [1, 2], [2, 3, 1]]  # 50% of 6 is 3; the last size repeats
        applies = [
            o
            for o in book.host_outcomes(rollout.id)
            if o.phase == "apply" and o.status != "started"
        ]
        order = [(o.ring, o.batch) for o in sorted(applies, key=lambda o: o.at)]
        assert order == sorted(
            order, key=lambda rb: (["canary", "pilot", "broad"].index(rb[0]), rb[1])
        )
        gates = {g.ring: g for g in book.gate_results(rollout.id)}
        for ring, nxt in (("canary", "pilot"), ("pilot", "broad")):
            first_next = min(o.at for o in applies if o.ring == nxt)
            assert gates[ring].outcome == "passed" and gates[ring].at <= first_next
    refs = subprocess.run(
        ["git", "for-each-ref", "refs/patchring"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert refs.count("refs/patchring/rings/") == 3


def test_failure_budget_halts_the_ring_mid_way(repo: Path, lab: Lab) -> None:
    set_rings(repo, pilot={"batches": [1, "100%"], "failure_budget": {"max_failed": 0}})
    pin_agent(repo, "1.0-3", rings=["pilot"])
    commit(repo, "pilot gets the broken 1.0-3")
    result = patchring(repo, "rollout", "--json")
    assert result.code == 3
    rings = {r["ring"]: r for r in result.json()["rings"]}
    assert rings["canary"]["status"] == "passed"
    assert rings["pilot"]["status"] == "failed"
    assert "budget" in rings["pilot"]["reason"] or "fail" in rings["pilot"]["reason"]
    assert rings["broad"]["status"] == "not-started"
    pilot = lab.ring("pilot")
    assert "half-configured" in dpkg_status(lab, pilot[0])  # batch 1 ran, and broke
    assert [dpkg_status(lab, n) for n in pilot[1:]] == ["", ""]  # later batches untouched
    assert all(installed(lab, n) is None for n in lab.ring("broad"))
    records = sorted((repo / ".patchring" / "runs").glob("*.json"))
    again = patchring(repo, "rollout")  # on the halted rollout: nothing done, the way out named
    assert again.code == 3
    assert "is halted at ring pilot" in again.stderr and "nothing was done" in again.stderr
    assert "`patchring rollback`" in again.stderr and "`patchring abort`" in again.stderr
    assert sorted((repo / ".patchring" / "runs").glob("*.json")) == records  # no empty record


def test_failed_gate_halts_before_the_next_ring(repo: Path, lab: Lab) -> None:
    set_rings(
        repo,
        canary={
            "gate": {
                "health_checks": [
                    {
                        "name": "never",
                        "command": "test -e /nonexistent",
                        "retries": 1,
                        "interval": "1s",
                    }
                ]
            }
        },
    )
    result = patchring(repo, "rollout", "--json")
    assert result.code == 3
    rings = {r["ring"]: r for r in result.json()["rings"]}
    assert rings["canary"]["status"] == "failed"
    assert "never" in rings["canary"]["reason"]
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))


def test_inconclusive_gate_pauses(repo: Path, lab: Lab) -> None:
    set_rings(
        repo,
        canary={
            "gate": {"health_checks": [{"name": "slow", "command": "sleep 30", "timeout": "2s"}]}
        },
    )
    result = patchring(repo, "rollout")
    assert result.code == 0  # paused is not a failure
    assert "inconclusive" in result.stdout
    status = patchring(repo, "status", "--json").json()
    assert status["rollouts"][0]["status"] == "paused"
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))


def test_soak_waits_then_continues(repo: Path, lab: Lab) -> None:
    set_rings(repo, canary={"soak": "4s"})
    first = patchring(repo, "rollout")
    assert first.code == 0
    assert "soaking until" in first.stdout
    status = patchring(repo, "status", "--json").json()["rollouts"][0]
    assert (status["status"], status["wait_reason"]) == ("waiting", "soak")
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))
    time.sleep(4)
    second = patchring(repo, "rollout", "--json")
    assert second.code == 0
    assert all(r["status"] == "passed" for r in second.json()["rings"])


def test_approval_gate(repo: Path, lab: Lab) -> None:
    set_rings(repo, canary={"approval": True})
    first = patchring(repo, "rollout")
    assert first.code == 0
    assert "waiting for approval" in first.stdout
    assert patchring(repo, "rollout").code == 0  # still waiting, nothing more happens
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))
    approved = patchring(repo, "approve", "canary", "--reason", "canary looks healthy")
    assert approved.code == 0
    done = patchring(repo, "rollout", "--json")
    assert done.code == 0
    assert all(r["status"] == "passed" for r in done.json()["rings"])
    with ledger(repo) as book:
        (approval,) = book.approvals(book.recent_rollouts(KEY(repo))[0].id)
        assert (approval.ring, approval.reason) == ("canary", "canary looks healthy")


def test_maintenance_window_refuses_and_emergency_overrides(repo: Path, lab: Lab) -> None:
    later = datetime.now(UTC) + timedelta(hours=6)
    window = {
        "start": later.strftime("%H:%M"),
        "end": (later + timedelta(minutes=30)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    set_rings(repo, canary={"windows": [window]})
    refused = patchring(repo, "rollout")
    assert refused.code == 0
    assert "outside its maintenance windows" in refused.stdout
    assert all(installed(lab, n) is None for n in lab.ring("canary"))
    assert patchring(repo, "rollout", "--emergency").code == 1  # a reason is required
    urgent = patchring(
        repo, "rollout", "--emergency", "--reason", "CVE-2026-10001 exploited", "--json"
    )
    assert urgent.code == 0
    record = urgent.json()
    assert record["emergency_reason"] == "CVE-2026-10001 exploited"
    assert all(installed(lab, n) == "1.0-2" for n in lab.ring("canary"))
    html = (repo / ".patchring" / "runs" / f"{record['id']}.html").read_text()
    assert "CVE-2026-10001 exploited" in html


def test_second_concurrent_rollout_is_refused(repo: Path, lab: Lab) -> None:
    set_rings(repo, canary={"approval": True})
    assert patchring(repo, "rollout").code == 0  # waits for approval: still active
    (repo / "policies" / "note.yml").write_text("name: note\nselect: {all: true}\n")
    commit(repo, "another change")
    second = patchring(repo, "rollout", "--ref", "HEAD")
    assert second.code == 1
    assert "is already waiting for this inventory (started by" in second.stderr


@pytest.mark.parametrize("automatic", [False, True], ids=["rollback-command", "auto-rollback"])
def test_rollback_restores_the_previous_version_and_file(
    repo: Path, lab: Lab, automatic: bool
) -> None:
    set_rings(repo, canary={"auto_rollback": automatic})
    policy = repo / "policies" / "acme-agent.yml"
    data = yaml.safe_load(policy.read_text())
    data.pop("patches")  # the fleet as it was before the advisory
    write_yaml(policy, data)
    pin_agent(repo, "1.0-1", rings=None)
    commit(repo, "agent 1.0-1 everywhere")
    assert patchring(repo, "rollout").code == 0
    canary = lab.ring("canary")[0]
    before = host(lab.address(canary), lab.ssh_config).file("/etc/acme/agent.conf").content_string
    pin_agent(repo, "1.0-3", rings=None)
    template = repo / "templates" / "agent.conf.j2"
    template.write_text(template.read_text() + "new_feature = on\n")
    commit(repo, "agent 1.0-3 (broken) and a new setting")
    halted = patchring(repo, "rollout")
    assert halted.code == 3
    if automatic:
        assert "rolling back automatically" in halted.stderr + halted.stdout
    else:
        back = patchring(repo, "rollback", "--json")
        assert back.code == 0, back.stdout + back.stderr
    h = host(lab.address(canary), lab.ssh_config)
    assert h.package("acme-agent").version == "1.0-1"
    assert h.file("/etc/acme/agent.conf").content_string == before
    assert patchring(repo, "status", "--json").json()["rollouts"][0]["status"] == "rolled-back"


def test_killed_mid_batch_resumes_at_that_batch(repo: Path, lab: Lab) -> None:
    set_rings(repo, broad={"batches": [2, 2, 2]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "rollout"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    reached = False
    while not reached and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if (repo / ".patchring" / "ledger.db").exists():
            with ledger(repo) as book:
                active = book.active_rollout(KEY(repo))
            reached = active is not None and (active.position.ring, active.position.batch) == (2, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert reached, "the rollout never reached broad batch 2"
    with ledger(repo) as book:
        rollout = book.recent_rollouts(KEY(repo))[0]
        done_before = book.completed_batches(rollout.id)
    assert ("broad", 0) in done_before and ("broad", 2) not in done_before
    assert rollout.status == "running"
    resumed_at = time.monotonic()
    result = patchring(repo, "rollout", "--json")
    resume_seconds = time.monotonic() - resumed_at
    assert result.code == 0, result.stdout + result.stderr
    with ledger(repo) as book:
        rollout = book.get_rollout(rollout.id)
        assert rollout.status == "completed"
        applies = [
            o
            for o in book.host_outcomes(rollout.id)
            if o.phase == "apply" and o.status != "started"
        ]
    # batches finished before the kill were not applied again
    for ring, batch in done_before:
        assert len([o for o in applies if (o.ring, o.batch) == (ring, batch)]) == len(
            rollout.plan.rings[["canary", "pilot", "broad"].index(ring)].batches[batch]
        )
    assert all(installed(lab, n) == "1.0-2" for n in lab.hosts)
    print(f"resume after kill: {resume_seconds:.2f} s")
    # The record of the resumed run is the whole rollout, from the ledger: every ring, batch
    # and host, including those the killed invocation did.
    record = result.json()
    plan = {r.name: [h for b in r.batches for h in b] for r in rollout.plan.rings}
    assert [(r["ring"], r["status"], r["hosts"]) for r in record["rings"]] == [
        (ring, "passed", hosts) for ring, hosts in plan.items()
    ]
    assert sorted(a["host"] for a in record["apply"]) == sorted(lab.hosts)
    assert all(a["status"] in {"changed", "unchanged"} for a in record["apply"])
    assert sorted(v["host"] for v in record["verify"]) == sorted(lab.hosts)
    assert all(c["status"] == "passed" for v in record["verify"] for c in v["results"])
    assert all(len(v["results"]) > 1 for v in record["verify"])  # every check, not ids
    assert record["rollout"]["id"] == rollout.id
    assert {e["host"] for e in record["rollout"]["events"]} == set(lab.hosts)
    runs = repo / ".patchring" / "runs"
    html = (runs / f"{record['id']}.html").read_text()
    markdown = (runs / f"{record['id']}.md").read_text()
    headline = f"Rollout succeeded: {len(lab.hosts)} of {len(lab.hosts)} hosts compliant"
    assert headline in html and headline in markdown
    for ring, hosts in plan.items():
        assert f"| {ring} | ✅ passed | {len(hosts)}/{len(hosts)} |" in markdown
        for name in hosts:
            assert f"| {name} | {ring} | compliant | " in markdown
            assert f"<span>{name}</span>" in html
    rendered = patchring(repo, "report", "--rollout", rollout.id)
    assert rendered.code == 0, rendered.stderr
    assert headline in rendered.stdout
    assert all(f"| {name} | " in rendered.stdout for name in lab.hosts)


def test_to_ring_stops_after_that_ring_and_a_later_rollout_continues(repo: Path, lab: Lab) -> None:
    set_rings(repo)
    first = patchring(repo, "rollout", "--to", "canary", "--json")
    assert first.code == 0
    assert [(r["ring"], r["status"]) for r in first.json()["rings"]] == [
        ("canary", "passed"),
        ("pilot", "not-started"),
        ("broad", "not-started"),
    ]
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))
    assert patchring(repo, "rollout", "--to", "nowhere").code == 1
    rest = patchring(repo, "rollout", "--json")
    assert rest.code == 0
    # the record is the whole rollout: canary, passed by the first invocation, too
    assert [r["status"] for r in rest.json()["rings"]] == ["passed", "passed", "passed"]
    assert all(installed(lab, n) == "1.0-2" for n in lab.hosts)


def test_pause_resume_and_abort(repo: Path, lab: Lab) -> None:
    set_rings(repo, pilot={"approval": True})
    assert patchring(repo, "rollout").code == 0  # canary done, waits for approval of pilot
    assert patchring(repo, "pause").code == 0
    assert patchring(repo, "status", "--json").json()["rollouts"][0]["status"] == "paused"
    paused = patchring(repo, "rollout")
    assert paused.code == 0 and "paused: `patchring resume` continues it" in paused.stdout
    resumed = patchring(repo, "resume")
    assert resumed.code == 0 and "waiting for approval" in resumed.stdout
    assert patchring(repo, "abort").code == 0
    assert patchring(repo, "status", "--json").json()["rollouts"][0]["status"] == "aborted"
    assert patchring(repo, "abort").code == 1  # nothing active any more
    assert all(installed(lab, n) is None for n in lab.ring("broad"))


def test_hosts_unreachable_at_the_gate_make_it_inconclusive_not_a_rollback(
    repo: Path, lab: Lab
) -> None:
    """Two pilot hosts cut off between their apply and the gate: the gate cannot observe them.
    It must be inconclusive (the rollout pauses), not failed, so auto_rollback does nothing."""
    pilot = lab.ring("pilot")
    set_rings(
        repo,
        pilot={"batches": [1], "failure_budget": {"max_failed": 3}, "auto_rollback": True},
    )
    policy = repo / "policies" / "acme-agent.yml"
    data = yaml.safe_load(policy.read_text())
    data.pop("patches")
    write_yaml(policy, data)
    pin_agent(repo, "1.0-1", rings=None)
    commit(repo, "agent 1.0-1 everywhere")
    assert patchring(repo, "rollout", "--to", "pilot").code == 0  # pilot's last good commit
    assert patchring(repo, "abort").code == 0
    pin_agent(repo, "1.0-2", rings=None)
    commit(repo, "agent 1.0-2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "rollout", "--to", "pilot"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cut: list[str] = []
    try:
        while proc.poll() is None and len(cut) < 2:
            time.sleep(0.1)
            with ledger(repo) as book:
                active = book.active_rollout(KEY(repo))
                done = book.completed_batches(active.id) if active else set()
            if active is not None:  # pilot's hosts in the rollout's own batch order
                pilot = [h for b in active.plan.rings[1].batches for h in b]
            for batch, name in enumerate(pilot[:2]):
                if ("pilot", batch) in done and name not in cut:
                    lab_faults.partition_host(LAB_NAME, name, lab.status.state_dir)
                    cut.append(name)
        out, err = proc.communicate(timeout=600)
        assert cut == pilot[:2], f"the rollout ended before pilot was cut off: {out}{err}"
        assert proc.returncode == 0, out + err  # paused is not a failure
        assert "gate inconclusive" in out, out
        assert f"2 host(s) not observed: {pilot[0]}, {pilot[1]} (" in out, out
        assert "unreachable: ssh: connect to host" in out, out
        assert "new failure" not in out and "rolling back" not in out + err
        with ledger(repo) as book:
            rollout = book.recent_rollouts(KEY(repo))[0]
            assert rollout.status == "paused"
            gate = [g for g in book.gate_results(rollout.id) if g.ring == "pilot"][-1]
            assert gate.outcome == "inconclusive"
            assert not [o for o in book.host_outcomes(rollout.id) if o.phase == "rollback"]
        assert installed(lab, pilot[2]) == "1.0-2"  # not rolled back to 1.0-1
    finally:
        for name in cut:
            lab_faults.heal_host(LAB_NAME, name, lab.status.state_dir)
    resumed = patchring(repo, "resume", "--json")  # observed again: the gate passes
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert [r["status"] for r in resumed.json()["rings"]] == ["passed", "passed", "passed"]
    assert all(installed(lab, n) == "1.0-2" for n in pilot)


def test_rollback_removes_the_apt_source_only_the_rolled_back_commit_declared(
    repo: Path, lab: Lab
) -> None:
    set_rings(repo)
    assert patchring(repo, "rollout", "--to", "canary").code == 0  # canary's last good commit
    assert patchring(repo, "abort").code == 0
    break_canary(repo)  # canary pinned to the broken 1.0-3, from a suite only it is offered
    commit(repo, "canary gets the broken 1.0-3")
    assert patchring(repo, "rollout").code == 3
    canary = host(lab.address(lab.ring("canary")[0]), lab.ssh_config)
    sources = "/etc/apt/sources.list.d/patchring-lab-broken.list"
    key = "/etc/apt/keyrings/patchring-lab-broken.asc"
    assert canary.file(sources).exists and canary.file(key).exists
    back = patchring(repo, "rollback")
    assert back.code == 0, back.stdout + back.stderr
    assert not canary.file(sources).exists
    assert not canary.file(key).exists
    assert canary.package("acme-agent").version == "1.0-2"
    assert " broken/main " not in canary.run("apt-cache policy acme-agent").stdout  # forgotten
