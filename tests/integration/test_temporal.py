"""A rollout on Temporal over two sites of the lab: a private dev server, one workflow worker and
one worker per site (real processes), two rings. A site worker killed mid-batch has its
activity retried by a restarted worker with no host applied twice or out of order; the CLI that
started the rollout exits and `status` shows it progressing; an approval signal releases the
waiting ring; the ledger holds what the embedded conductor writes for the same rollout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.rollout.conductor import inventory_key
from orchestrator.store.ledger import open_ledger
from tests.integration.conftest import Lab
from tests.integration.fleet import commit, make_repo, patchring, write_yaml
from tests.temporal import TemporalServer, temporal_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    with temporal_server(tmp_path_factory.mktemp("temporal")) as running:
        yield running


class Workers:
    """`patchring worker` processes, ended at the end (SIGKILL where the test says so)."""

    def __init__(self, repo: Path, address: str, logs: Path) -> None:
        self.repo, self.address, self.logs = repo, address, logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *flags: str) -> None:
        log = (self.logs / f"worker-{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker", *flags, "--address", self.address],
            cwd=self.repo,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def two_site_repo(dest: Path, lab: Lab, ledger_hosts: list[str]) -> Path:
    """Four lab hosts: site a = hosts 0, 1 (named on the host), site b = hosts 2, 3 (through a
    group); ring canary = 0, 1, 2 in one batch, then (after approval) ring broad = 3."""
    repo = make_repo(dest, lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90})
    lab_file = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(lab_file.read_text())
    keep = {name: data["hosts"][name] for name in ledger_hosts}
    for index, entry in enumerate(keep.values()):
        entry["ring"] = "canary" if index < 3 else "broad"
        if index < 2:
            entry["site"] = "a"
        else:
            entry["groups"] = [*entry.get("groups", []), "east"]
    data["hosts"] = keep
    write_yaml(lab_file, data)
    fleet = repo / "inventory" / "fleet.yml"
    data = yaml.safe_load(fleet.read_text())
    data["rings"] = [
        {"name": "canary", "batches": ["100%"], "approval": True},
        {"name": "broad", "batches": ["100%"]},
    ]
    data["groups"]["east"] = {"site": "b"}
    write_yaml(fleet, data)
    commit(repo, "two sites, two rings")
    return repo


def poll(what: str, check: Callable[[], Any], within: float = 150.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def outcomes(ledger_path: Path) -> list[Any]:
    with open_ledger(ledger_path) as ledger:
        recent = ledger.recent_rollouts(inventory_key(ledger_path.parents[1], "inventory"))
        return ledger.host_outcomes(recent[0].id) if recent else []


def shape(ledger_path: Path, key: str) -> dict[str, Any]:
    """What a rollout left in the ledger, in a form two engines can be compared by: each host's
    final apply and verify states per ring, the gates, the approvals, the status."""
    with open_ledger(ledger_path) as ledger:
        (rollout,) = ledger.recent_rollouts(key)[:1]
        states = sorted(
            {
                (o.ring, o.host, o.phase, o.status)
                for o in ledger.host_outcomes(rollout.id)
                if o.status != "started"
            }
        )
        return {
            "status": rollout.status,
            "plan": rollout.plan.model_dump(),
            "states": states,
            "gates": [(g.ring, g.outcome) for g in ledger.gate_results(rollout.id)],
            "approvals": [a.ring for a in ledger.approvals(rollout.id)],
            "deployed": sorted(ledger.ring_deployments(key)),
        }


def rings_of(record: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r["ring"], r["status"], tuple(sorted(r["hosts"]))) for r in record["rings"]]


def test_rollout_on_temporal_over_two_sites(
    tmp_path: Path, lab: Lab, server: TemporalServer
) -> None:
    hosts = lab.hosts[:4]
    lab.reset(hosts)
    repo = two_site_repo(tmp_path / "repo", lab, hosts)
    key = inventory_key(repo, "inventory")
    ledger_path = repo / ".patchring" / "ledger.db"
    temporal = ["--engine", "temporal", "--temporal-address", server.address]
    workers = Workers(repo, server.address, tmp_path)
    try:
        workers.start("central", "--workflows")
        workers.start("a", "--site", "a")
        workers.start("b", "--site", "b")
        started = patchring(repo, "rollout", *temporal, "--detach")
        assert started.code == 0, started.stderr
        assert f"rollout-{key}" in started.stdout

        # site a applies hosts 0 then 1; kill its worker as soon as host 0 is recorded done
        def first_done() -> bool:
            final = [o for o in outcomes(ledger_path) if o.phase == "apply"]
            return any(o.host == hosts[0] and o.status != "started" for o in final)

        poll("host 0 applied", first_done)
        workers.kill("a")
        applied_before_kill = {
            o.host for o in outcomes(ledger_path) if o.phase == "apply" and o.status != "started"
        }
        assert hosts[1] not in applied_before_kill, "the kill was not mid-batch"

        status = patchring(repo, "status", *temporal, "--json")
        assert status.code == 0, status.stderr
        workflow = status.json()["temporal"]["workflow"]
        assert workflow["execution"] == "RUNNING"
        assert workflow["ring"] == "canary"

        workers.start("a", "--site", "a")  # the retried activity runs here

        # `rollout` again joins the running workflow and follows it until it waits, like the
        # embedded `rollout` returns at an approval: exit 0 and the run record of the ledger
        followed = patchring(repo, "rollout", *temporal, "--json")
        assert followed.code == 0, followed.stderr
        temporal_record = followed.json()
        found = patchring(repo, "status", *temporal, "--json").json()["temporal"]["workflow"]
        assert (found["state"], found["batches_done"]) == ("waiting-approval", 1)
        # the workflow drives the rollout while it waits: an embedded driver is refused
        refused = patchring(repo, "rollout", "--engine", "embedded")
        assert refused.code == 1
        assert "is being driven by temporal:" in refused.stderr
        broad = [o for o in outcomes(ledger_path) if o.host == hosts[3]]
        assert broad == [], "broad started before its approval"

        approved = patchring(repo, "approve", "canary", "--reason", "canary healthy", *temporal)
        assert approved.code == 0, approved.stderr

        def completed() -> bool:
            result = patchring(repo, "status", *temporal, "--json")
            return bool(result.json()["temporal"]["workflow"]["execution"] == "COMPLETED")

        poll("the rollout completes", completed)
    finally:
        workers.stop_all()

    applies = [o for o in outcomes(ledger_path) if o.phase == "apply"]
    finals = [(o.host, o.status) for o in applies if o.status != "started"]
    # every host applied exactly once, site a's hosts in batch order
    assert sorted(h for h, _ in finals) == sorted(hosts)
    assert [h for h, _ in finals if h in hosts[:2]] == hosts[:2]
    starts_after_final = [
        o.host
        for index, o in enumerate(applies)
        if o.status == "started"
        and any(p.host == o.host and p.status != "started" for p in applies[:index])
    ]
    assert starts_after_final == [], "a host applied again after it was done"
    temporal_shape = shape(ledger_path, key)
    assert temporal_shape["status"] == "completed"
    assert temporal_shape["approvals"] == ["canary"]
    assert temporal_shape["gates"] == [("canary", "passed"), ("broad", "passed")]

    # the same rollout on the embedded conductor, from pristine hosts, into its own ledger
    lab.reset(hosts)
    embedded_ledger = tmp_path / "embedded" / ".patchring" / "ledger.db"
    embedded = ["--ledger", str(embedded_ledger)]
    first = patchring(repo, "rollout", *embedded, "--json")
    assert first.code == 0, first.stderr
    assert rings_of(first.json()) == rings_of(temporal_record)
    assert rings_of(temporal_record) == [
        ("canary", "passed", tuple(hosts[:3])),
        ("broad", "not-started", (hosts[3],)),
    ]
    assert patchring(repo, "approve", "canary", "--reason", "canary healthy", *embedded).code == 0
    second = patchring(repo, "rollout", *embedded, "--json")
    assert second.code == 0, second.stderr
    assert shape(embedded_ledger, key) == temporal_shape
    record = second.json()
    assert [(r["ring"], r["status"]) for r in record["rings"]] == [
        ("canary", "passed"),
        ("broad", "passed"),
    ]
    lab.reset(hosts)


def test_status_without_a_workflow_says_so(
    tmp_path: Path, lab: Lab, server: TemporalServer
) -> None:
    repo = make_repo(tmp_path / "repo", lab.inventory)
    result = patchring(
        repo, "status", "--engine", "temporal", "--temporal-address", server.address, "--json"
    )
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["temporal"]["workflow"] is None
    unreachable = patchring(
        repo, "status", "--engine", "temporal", "--temporal-address", "127.0.0.1:1"
    )
    assert unreachable.code == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in unreachable.stderr
