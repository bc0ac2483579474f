"""One driver per rollout, on the 10-host lab (rings 1/3/6): a second `patchring rollout` while the
first drives is refused and applies nothing (SQLite and PostgreSQL); an `abort` from another shell
stops the driver before its next batch; a driver killed between the gate's ledger write and the
ring ref is resumed with the ref repaired, and `status` says its driver was lost; losing the
PostgreSQL ledger part way exits 3 with a run record, and the rollout resumes afterwards."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.gitops.commits import resolve_ref, ring_refs
from orchestrator.store.ledger import Ledger, Rollout, open_ledger
from tests.integration.conftest import Lab
from tests.integration.fleet import PROJECT, CliResult, make_repo
from tests.integration.test_rollout_engine import KEY, installed, set_rings
from tests.postgres import PostgresServer, postgres_for_tests

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_for_tests() as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    return make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, repo: Path) -> str:
    if request.param == "sqlite":
        return str(repo / ".patchring" / "ledger.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database("rollout")


def env_for(location: str) -> dict[str, str]:
    return {**os.environ, "PATCHRING_LEDGER": location, "PYTHONPATH": str(PROJECT)}


def run(repo: Path, location: str, *args: str) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=env_for(location),
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@contextlib.contextmanager
def driving(repo: Path, location: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`patchring rollout` running in the background (output to files: no pipe fills up)."""
    out = (repo.parent / "driver.out").open("w")
    err = (repo.parent / "driver.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "rollout", *args],
        cwd=repo,
        stdout=out,
        stderr=err,
        text=True,
        env=env_for(location),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        out.close()
        err.close()


def wait_for(
    repo: Path, location: str, proc: subprocess.Popen[str], reached: Callable[[Rollout], bool]
) -> Rollout:
    """Poll the ledger until the active rollout satisfies `reached` (while the driver lives)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver ended early: {driver_output(repo)}"
        with contextlib.suppress(Exception):  # the ledger may not exist yet
            with open_ledger(location) as book:
                active = book.active_rollout(KEY(repo))
            if active is not None and reached(active):
                return active
        time.sleep(0.1)
    raise AssertionError("the rollout never got there")


def driver_output(repo: Path) -> str:
    return (repo.parent / "driver.out").read_text() + (repo.parent / "driver.err").read_text()


def applies_of(book: Ledger, rollout_id: str) -> list[tuple[str, int, str]]:
    """Each apply outcome (an attempt's `started` mark, written before it, is not one)."""
    return [
        (o.ring, o.batch, o.host)
        for o in book.host_outcomes(rollout_id)
        if o.phase == "apply" and o.status != "started"
    ]


def test_a_second_rollout_is_refused_while_the_first_drives(
    repo: Path, lab: Lab, location: str
) -> None:
    set_rings(repo, broad={"batches": [2, 2, 2]})
    with driving(repo, location) as first:
        wait_for(repo, location, first, lambda r: r.position.ring >= 1)  # canary passed
        second = run(repo, location, "rollout")
        assert second.code == 1, second.stdout + second.stderr
        assert "is being driven by " in second.stderr and "nothing was done" in second.stderr
        status = run(repo, location, "status")
        assert "running (driven by " in status.stdout
        assert first.wait(timeout=600) == 0, driver_output(repo)
    with open_ledger(location) as book:
        (rollout,) = book.recent_rollouts(KEY(repo))
        assert rollout.status == "completed"
        applied = collections.Counter(applies_of(book, rollout.id))
        planned = {
            (ring.name, b, h)
            for ring in rollout.plan.rings
            for b, batch in enumerate(ring.batches)
            for h in batch
        }
        assert set(applied) == planned and set(applied.values()) == {1}  # each batch once
        gates = [(g.ring, g.outcome) for g in book.gate_results(rollout.id)]
        assert gates == [("canary", "passed"), ("pilot", "passed"), ("broad", "passed")]
        assert book.lease(rollout.id) is None  # released at the end
    assert all(installed(lab, n) == "1.0-2" for n in lab.hosts)


def test_abort_from_another_shell_stops_the_driver_before_its_next_batch(
    repo: Path, lab: Lab
) -> None:
    location = str(repo / ".patchring" / "ledger.db")
    set_rings(repo, broad={"batches": [1]})  # six batches of one host
    with driving(repo, location) as driver:
        wait_for(repo, location, driver, lambda r: (r.position.ring, r.position.batch) == (2, 1))
        aborted = run(repo, location, "abort")
        assert aborted.code == 0, aborted.stderr
        with open_ledger(location) as book:
            (rollout,) = book.recent_rollouts(KEY(repo))
        assert driver.wait(timeout=600) == 0, driver_output(repo)
    assert "was aborted by another command" in driver_output(repo)
    with open_ledger(location) as book:
        final = book.get_rollout(rollout.id)
        applied = applies_of(book, rollout.id)
    assert final.status == "aborted"
    assert final.position == rollout.position  # the driver wrote nothing over the abort
    broad = rollout.plan.rings[2].batches
    in_flight = rollout.position.batch  # the batch that was being applied when abort came
    later = [h for batch in broad[in_flight + 1 :] for h in batch]
    assert len(later) >= 2
    assert not [a for a in applied if a[0] == "broad" and a[1] > in_flight]
    assert all(installed(lab, h) is None for h in later)  # later batches' hosts untouched
    assert all(installed(lab, h) == "1.0-2" for h in broad[0])


KILLED_AFTER_GATE = """
import os, signal, sys
from gevent import monkey
monkey.patch_all()
from pathlib import Path
from orchestrator.rollout.conductor import Conductor
from orchestrator.store.ledger import open_ledger


class KilledAfterGate:
    # the real ledger, except that the process dies right after a gate's ledger write
    def __init__(self, ledger):
        self._ledger = ledger

    def __getattr__(self, name):
        return getattr(self._ledger, name)

    def record_gate_passed(self, *args):
        self._ledger.record_gate_passed(*args)
        print("gate written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


repo = Path(sys.argv[1])
with open_ledger(repo / ".patchring" / "ledger.db") as ledger:
    conductor = Conductor(
        repo=repo, inventory="inventory", ledger=KilledAfterGate(ledger), operator="test@lab"
    )
    conductor.drive(conductor.start_or_continue(None))
"""


def test_killed_between_gate_and_ring_ref_resumes_with_the_ref_repaired(
    repo: Path, lab: Lab
) -> None:
    location = str(repo / ".patchring" / "ledger.db")
    set_rings(repo)
    head = resolve_ref(repo, "HEAD")
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_AFTER_GATE), str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env=env_for(location),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout == "gate written\n"
    with open_ledger(location) as book:
        (rollout,) = book.recent_rollouts(KEY(repo))
        assert [(g.ring, g.outcome) for g in book.gate_results(rollout.id)] == [
            ("canary", "passed")
        ]
        assert book.ring_deployments(KEY(repo))["canary"].commit == head  # with the gate
    assert "canary" not in ring_refs(repo)  # the kill came before the ref moved
    status = run(repo, location, "status")
    assert "running (driver lost: pid " in status.stdout, status.stdout
    assert "run `patchring rollout` to resume" in status.stdout
    resumed = run(repo, location, "rollout", "--to", "canary")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert ring_refs(repo) == {"canary": head}
    rings = json.loads(run(repo, location, "status", "--json").stdout)["rings"]
    assert rings["canary"]["commit"] == head
    with open_ledger(location) as book:
        gates = [(g.ring, g.outcome) for g in book.gate_results(rollout.id)]
    assert gates == [("canary", "passed")]  # not evaluated again
    assert all(installed(lab, n) is None for n in lab.ring("pilot"))


def test_losing_the_postgres_ledger_mid_rollout_exits_3_with_a_record_then_resumes(
    repo: Path, lab: Lab, postgres: PostgresServer
) -> None:
    location = postgres.create_database("lost")
    set_rings(repo, broad={"batches": [2, 2, 2]})
    runs = repo / ".patchring" / "runs"
    try:
        with driving(repo, location) as driver:
            wait_for(repo, location, driver, lambda r: r.position.ring >= 1)
            postgres.stop()
            code = driver.wait(timeout=600)
        output = driver_output(repo)
    finally:
        postgres.start()
    assert code == 3, output
    assert "the ledger failed part way" in output and "hosts may have changed" in output
    assert "Traceback" not in output
    (record,) = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert record["status"] == "failed"
    assert {h["host"] for h in record["apply"]} >= set(lab.ring("canary"))
    resumed = run(repo, location, "rollout")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    with open_ledger(location) as book:
        assert book.recent_rollouts(KEY(repo))[0].status == "completed"
    assert all(installed(lab, n) == "1.0-2" for n in lab.hosts)
