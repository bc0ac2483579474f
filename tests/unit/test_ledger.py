"""The rollout ledger: one suite, run against SQLite and a real private PostgreSQL server.

Each test gets a fresh ledger location (a new SQLite file, or a new PostgreSQL database). Races and
crashes use real separate processes. Without PostgreSQL's server programs the PostgreSQL half is
skipped locally, and fails under CI (CI=true), so a CI machine missing them cannot pass silently.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.errors import PatchringError, UserInputError
from orchestrator.store.ledger import (
    SCHEMA_VERSION,
    ActiveRolloutError,
    LeaseHeldError,
    LeaseHolder,
    LeaseLostError,
    Ledger,
    LedgerError,
    LedgerSchemaError,
    NewRollout,
    PlannedRing,
    Position,
    RolloutChangedError,
    RolloutPlan,
    UnknownRolloutError,
    open_ledger,
)
from orchestrator.store.ledger_postgres import redact_url
from tests.postgres import PostgresServer, postgres_for_tests

REPO = Path(__file__).resolve().parents[2]
FLEET = "/srv/fleet:inventory/prod.yml#3f2a9c"
PLAN = RolloutPlan(
    rings=(
        PlannedRing(name="canary", batches=(("web-1",),)),
        PlannedRing(name="main", batches=(("web-2", "web-3"), ("db-1",))),
    )
)


def new_rollout(key: str = FLEET, commit: str = "a1b2c3d", by: str = "ana@laptop") -> NewRollout:
    return NewRollout(inventory_key=key, commit=commit, started_by=by, plan=PLAN)


@dataclass(frozen=True)
class Backend:
    name: str
    location: str
    set_schema_version: Callable[[int], None]
    execute: Callable[[str], None]  # SQL on the ledger's tables, written `{patchring}.table`


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private cluster for the session; missing server programs fail under CI=true."""
    with postgres_for_tests() as server:
        yield server


def _sqlite_backend(path: Path) -> Backend:
    def set_version(version: int) -> None:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE schema_version SET version = ?", (version,))
        db.close()

    def execute(sql: str) -> None:
        with sqlite3.connect(path) as db:
            db.execute(sql.format(patchring="main"))
        db.close()

    return Backend("sqlite", str(path), set_version, execute)


def _postgres_backend(server: PostgresServer) -> Backend:
    url = server.create_database()

    def set_version(version: int) -> None:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("UPDATE patchring.schema_version SET version = %s", (version,))

    def execute(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(sql.format(patchring="patchring"))  # type: ignore[arg-type]

    return Backend("postgresql", url, set_version, execute)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite_backend(tmp_path / "state" / "ledger" / "rollouts.db")
    return _postgres_backend(request.getfixturevalue("postgres_server"))


@pytest.fixture
def ledger(backend: Backend) -> Iterator[Ledger]:
    with open_ledger(backend.location) as opened:
        yield opened


def test_created_on_first_use_and_reopened(backend: Backend) -> None:
    with open_ledger(backend.location) as ledger:
        assert ledger.active_rollout(FLEET) is None
        assert ledger.recent_rollouts(FLEET) == []
        assert ledger.ring_deployments(FLEET) == {}
    if backend.name == "sqlite":
        with sqlite3.connect(backend.location) as db:
            assert db.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
    with open_ledger(backend.location) as again:
        assert again.active_rollout(FLEET) is None


def test_start_records_a_running_rollout(ledger: Ledger) -> None:
    before = datetime.now(UTC)
    rollout = ledger.start_rollout(new_rollout())
    assert rollout.status == "running"
    assert rollout.position == Position(ring=0, batch=0)
    assert rollout.plan == PLAN
    assert rollout.started_by == "ana@laptop"
    assert before <= rollout.started_at == rollout.updated_at <= datetime.now(UTC)
    assert rollout.started_at.tzinfo == UTC
    assert rollout.id.startswith(f"{rollout.started_at:%Y%m%dT%H%M%SZ}-")
    assert ledger.get_rollout(rollout.id) == rollout
    assert ledger.active_rollout(FLEET) == rollout


def test_second_active_rollout_is_refused_with_the_existing_one(ledger: Ledger) -> None:
    first = ledger.start_rollout(new_rollout())
    with pytest.raises(ActiveRolloutError) as refused:
        ledger.start_rollout(new_rollout(by="ci-job-881"))
    error = refused.value
    assert (error.rollout_id, error.started_by, error.started_at) == (
        first.id,
        "ana@laptop",
        first.started_at,
    )
    assert isinstance(error, UserInputError)
    assert first.id in error.message
    assert error.hint
    assert ledger.recent_rollouts(FLEET) == [first]
    other = ledger.start_rollout(new_rollout(key="/srv/other:inventory/lab.yml#0000"))
    assert other.status == "running"


@pytest.mark.parametrize("status", ["waiting", "paused", "halted"])
def test_every_active_status_blocks_a_new_rollout(ledger: Ledger, status: str) -> None:
    first = ledger.start_rollout(new_rollout())
    ledger.update_rollout(first.id, status=status)  # type: ignore[arg-type]
    with pytest.raises(ActiveRolloutError):
        ledger.start_rollout(new_rollout())


@pytest.mark.parametrize("status", ["completed", "aborted", "rolled-back"])
def test_a_finished_rollout_frees_the_inventory(ledger: Ledger, status: str) -> None:
    first = ledger.start_rollout(new_rollout())
    ledger.update_rollout(first.id, status=status)  # type: ignore[arg-type]
    assert ledger.active_rollout(FLEET) is None
    second = ledger.start_rollout(new_rollout(commit="e4f5a6b"))
    assert [r.id for r in ledger.recent_rollouts(FLEET)] == [second.id, first.id]
    with pytest.raises(ActiveRolloutError):
        ledger.update_rollout(first.id, status="running")


def test_refused_across_two_connections(backend: Backend) -> None:
    with open_ledger(backend.location) as one, open_ledger(backend.location) as two:
        first = one.start_rollout(new_rollout())
        with pytest.raises(ActiveRolloutError) as refused:
            two.start_rollout(new_rollout(by="bob@ci"))
        assert refused.value.rollout_id == first.id
        assert two.get_rollout(first.id) == first


RACER = """
import sys
from orchestrator.store.ledger import ActiveRolloutError, open_ledger
from tests.unit.test_ledger import new_rollout
sys.stdin.readline()
ledger = open_ledger(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
try:
    print("won", ledger.start_rollout(new_rollout(by=sys.argv[2])).id, flush=True)
except ActiveRolloutError as exc:
    print("refused", exc.rollout_id, flush=True)
ledger.close()
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def _say(processes: list[subprocess.Popen[str]], line: str) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(line)
        process.stdin.flush()


def test_racing_processes_create_once_and_let_exactly_one_win(backend: Backend) -> None:
    racers = [_python(RACER, backend.location, f"racer-{n}@host") for n in range(4)]
    _say(racers, "open\n")  # all create the ledger at once: one creates, the others find it
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    _say(racers, "start\n")  # all start a rollout at once: the database lets one win
    outputs = [racer.communicate(timeout=60)[0].split() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    winners = [words[1] for words in outputs if words[0] == "won"]
    refused = [words[1] for words in outputs if words[0] == "refused"]
    assert len(winners) == 1 and len(refused) == 3
    assert set(refused) == set(winners)
    with open_ledger(backend.location) as ledger:
        assert [r.id for r in ledger.recent_rollouts(FLEET)] == winners


def test_update_sets_and_clears_a_wait(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    until = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    waiting = ledger.update_rollout(
        rollout.id,
        status="waiting",
        position=Position(ring=1, batch=0),
        wait_reason="soak",
        wait_until=until,
    )
    assert (waiting.status, waiting.wait_reason, waiting.wait_until) == ("waiting", "soak", until)
    assert waiting.updated_at >= rollout.updated_at
    assert ledger.get_rollout(rollout.id) == waiting
    resumed = ledger.update_rollout(rollout.id, status="running", wait_reason=None, wait_until=None)
    assert (resumed.wait_reason, resumed.wait_until) == (None, None)
    assert resumed.position == Position(ring=1, batch=0)  # left as it was
    assert ledger.get_rollout(rollout.id) == resumed


def test_unknown_rollout_is_a_user_error(ledger: Ledger) -> None:
    with pytest.raises(UnknownRolloutError, match="no rollout '20990101T000000Z-000000'"):
        ledger.get_rollout("20990101T000000Z-000000")
    with pytest.raises(UnknownRolloutError):
        ledger.update_rollout("nope", status="aborted")
    with pytest.raises(UnknownRolloutError):
        ledger.record_host("nope", "canary", 0, "web-1", "apply", "changed")
    with pytest.raises(UnknownRolloutError):
        ledger.mark_batch("nope", "canary", 0, "started")
    with pytest.raises(UnknownRolloutError):
        ledger.approve("nope", "main", "ana", "looks fine")
    with pytest.raises(UnknownRolloutError):
        ledger.set_ring_deployment(FLEET, "canary", "a1b2c3d", "nope")


def test_resume_data_names_completed_batches_and_host_outcomes(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.mark_batch(rollout.id, "canary", 0, "started")
    ledger.record_host(rollout.id, "canary", 0, "web-1", "apply", "changed", "3 resources")
    ledger.record_host(rollout.id, "canary", 0, "web-1", "verify", "passed")
    ledger.mark_batch(rollout.id, "canary", 0, "completed")
    ledger.mark_batch(rollout.id, "main", 0, "started")
    ledger.record_host(rollout.id, "main", 0, "web-2", "apply", "failed", "apt: held package")
    assert ledger.completed_batches(rollout.id) == {("canary", 0)}
    outcomes = ledger.host_outcomes(rollout.id)
    assert [(o.ring, o.batch, o.host, o.phase, o.status, o.detail) for o in outcomes] == [
        ("canary", 0, "web-1", "apply", "changed", "3 resources"),
        ("canary", 0, "web-1", "verify", "passed", ""),
        ("main", 0, "web-2", "apply", "failed", "apt: held package"),
    ]
    assert all(o.rollout_id == rollout.id and o.at.tzinfo == UTC for o in outcomes)
    assert outcomes[0].at <= outcomes[2].at
    ledger.mark_batch(rollout.id, "main", 0, "completed")
    assert ledger.completed_batches(rollout.id) == {("canary", 0), ("main", 0)}
    other = ledger.start_rollout(new_rollout(key="other"))
    assert ledger.completed_batches(other.id) == set()
    assert ledger.host_outcomes(other.id) == []


def test_gate_results_keep_their_reasons(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.record_gate(rollout.id, "canary", "passed", [])
    ledger.record_gate(
        rollout.id, "main", "failed", ("web-2: apply failed", 'db-1: check "port 5432" failed')
    )
    gates = ledger.gate_results(rollout.id)
    assert [(g.ring, g.outcome, g.reasons) for g in gates] == [
        ("canary", "passed", ()),
        ("main", "failed", ("web-2: apply failed", 'db-1: check "port 5432" failed')),
    ]


def test_approvals_are_kept_in_order(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    first = ledger.approve(rollout.id, "main", "ana@laptop", "canary soaked 2h, no alerts")
    second = ledger.approve(rollout.id, "main", "bob@ci", "second pair of eyes")
    assert first.who == "ana@laptop" and first.ring == "main" and first.at.tzinfo == UTC
    assert ledger.approvals(rollout.id) == [first, second]


def test_ring_deployments_keep_the_last_commit_per_ring(ledger: Ledger) -> None:
    one = ledger.start_rollout(new_rollout(commit="1111111"))
    ledger.set_ring_deployment(FLEET, "canary", "1111111", one.id)
    ledger.set_ring_deployment(FLEET, "main", "1111111", one.id)
    ledger.update_rollout(one.id, status="completed")
    two = ledger.start_rollout(new_rollout(commit="2222222"))
    ledger.set_ring_deployment(FLEET, "canary", "2222222", two.id)
    deployments = ledger.ring_deployments(FLEET)
    assert {ring: (d.commit, d.rollout_id) for ring, d in deployments.items()} == {
        "canary": ("2222222", two.id),
        "main": ("1111111", one.id),
    }
    assert deployments["canary"].at >= deployments["main"].at
    assert ledger.ring_deployments("another fleet") == {}


def test_recent_rollouts_newest_first_with_a_limit(ledger: Ledger) -> None:
    ids = []
    for commit in ("1111111", "2222222", "3333333"):
        rollout = ledger.start_rollout(new_rollout(commit=commit))
        ledger.update_rollout(rollout.id, status="completed")
        ids.append(rollout.id)
    assert [r.id for r in ledger.recent_rollouts(FLEET)] == ids[::-1]
    assert [r.id for r in ledger.recent_rollouts(FLEET, limit=2)] == ids[:0:-1]
    assert ledger.recent_rollouts("another fleet") == []


def test_everything_survives_a_reopen(backend: Backend) -> None:
    with open_ledger(backend.location) as ledger:
        rollout = ledger.start_rollout(new_rollout())
        ledger.mark_batch(rollout.id, "canary", 0, "completed")
        ledger.record_host(rollout.id, "canary", 0, "web-1", "health", "passed", "http 200")
        ledger.record_gate(rollout.id, "canary", "inconclusive", ["no metrics yet"])
        approval = ledger.approve(rollout.id, "main", "ana@laptop", "go")
        ledger.set_ring_deployment(FLEET, "canary", "a1b2c3d", rollout.id)
        paused = ledger.update_rollout(rollout.id, status="paused", position=Position(ring=1))
        saved = (
            ledger.host_outcomes(rollout.id),
            ledger.gate_results(rollout.id),
            ledger.ring_deployments(FLEET),
        )
    with open_ledger(backend.location) as reopened:
        assert reopened.get_rollout(rollout.id) == paused
        assert reopened.active_rollout(FLEET) == paused
        assert reopened.completed_batches(rollout.id) == {("canary", 0)}
        assert reopened.approvals(rollout.id) == [approval]
        assert (
            reopened.host_outcomes(rollout.id),
            reopened.gate_results(rollout.id),
            reopened.ring_deployments(FLEET),
        ) == saved


WRITER = """
import sys
from orchestrator.store.ledger import open_ledger
from tests.unit.test_ledger import new_rollout
ledger = open_ledger(sys.argv[1])
rollout = ledger.start_rollout(new_rollout())
print(rollout.id, flush=True)
for n in range(100000):
    ledger.record_host(rollout.id, "main", n // 10, f"host-{n}", "apply", "changed")
    print(n, flush=True)
"""


def test_a_killed_writer_leaves_every_returned_write_and_no_half_rollout(backend: Backend) -> None:
    writer = _python(WRITER, backend.location)
    assert writer.stdout is not None
    rollout_id = writer.stdout.readline().strip()
    for _ in range(30):
        last = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    with open_ledger(backend.location) as ledger:
        rollout = ledger.get_rollout(rollout_id)
        assert rollout.status == "running" and rollout.plan == PLAN
        hosts = [o.host for o in ledger.host_outcomes(rollout_id)]
        assert len(hosts) > last
        assert hosts == [f"host-{n}" for n in range(len(hosts))]


def test_a_newer_schema_version_is_refused(backend: Backend) -> None:
    open_ledger(backend.location).close()
    backend.set_schema_version(SCHEMA_VERSION + 1)
    with pytest.raises(LedgerSchemaError) as refused:
        open_ledger(backend.location)
    assert f"schema version {SCHEMA_VERSION + 1}" in refused.value.message
    assert "upgrade patchring" in (refused.value.hint or "")
    assert isinstance(refused.value, PatchringError)


# --- the driver lease: one process drives a rollout ---

MINUTE = timedelta(minutes=1)


def holder(name: str = "ana", pid: int = 4242) -> LeaseHolder:
    return LeaseHolder(token=f"token-{name}", operator=f"{name}@laptop", hostname="laptop", pid=pid)


def test_lease_is_taken_renewed_and_released(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    assert ledger.lease(rollout.id) is None
    taken = ledger.take_lease(rollout.id, holder(), MINUTE)
    assert taken.live and taken.holder == holder()
    assert taken.taken_at == taken.heartbeat_at and taken.expires_at == taken.taken_at + MINUTE
    read = ledger.lease(rollout.id)
    assert read is not None and read.observed_at >= taken.observed_at
    assert read == taken.model_copy(update={"observed_at": read.observed_at})
    renewed = ledger.renew_lease(rollout.id, "token-ana", 2 * MINUTE)
    assert renewed.taken_at == taken.taken_at  # since when it drives does not move
    assert renewed.heartbeat_at >= taken.heartbeat_at
    assert renewed.expires_at == renewed.heartbeat_at + 2 * MINUTE
    again = ledger.take_lease(rollout.id, holder(), MINUTE)  # the holder may take it again
    assert again.taken_at == taken.taken_at
    ledger.release_lease(rollout.id, "token-someone-else")  # not theirs: nothing happens
    assert ledger.lease(rollout.id) is not None
    ledger.release_lease(rollout.id, "token-ana")
    assert ledger.lease(rollout.id) is None
    with pytest.raises(LeaseLostError, match="the lease was released"):
        ledger.renew_lease(rollout.id, "token-ana", MINUTE)
    with pytest.raises(UnknownRolloutError):
        ledger.take_lease("nope", holder(), MINUTE)


def test_a_live_lease_is_refused_naming_its_holder(backend: Backend) -> None:
    with open_ledger(backend.location) as one, open_ledger(backend.location) as two:
        rollout = one.start_rollout(new_rollout())
        first = one.take_lease(rollout.id, holder("ana", pid=111), MINUTE)
        with pytest.raises(LeaseHeldError) as refused:
            two.take_lease(rollout.id, holder("bob", pid=222), MINUTE)
        error = refused.value
        assert error.lease.holder == first.holder
        assert error.message.startswith(
            f"rollout {rollout.id} is being driven by ana@laptop:111 "
            f"since {first.taken_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        assert "nothing was done" in error.message
        assert "patchring abort" in (error.hint or "")
        assert isinstance(error, UserInputError)  # exit 1: nothing was changed
        with pytest.raises(LeaseLostError, match="driven by ana@laptop:111"):
            two.renew_lease(rollout.id, "token-bob", MINUTE)
        assert one.lease(rollout.id).holder.token == "token-ana"  # type: ignore[union-attr]


def test_an_expired_lease_is_taken_over_and_its_old_holder_told(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.take_lease(rollout.id, holder("ana"), timedelta(0))  # expires at once
    expired = ledger.lease(rollout.id)
    assert expired is not None and not expired.live
    taken = ledger.take_lease(rollout.id, holder("bob"), MINUTE)
    assert taken.holder.token == "token-bob" and taken.live
    assert taken.taken_at >= expired.taken_at
    with pytest.raises(LeaseLostError) as lost:
        ledger.renew_lease(rollout.id, "token-ana", MINUTE)
    assert lost.value.lease is not None and lost.value.lease.holder.token == "token-bob"


def test_a_live_lease_of_a_known_dead_holder_can_be_replaced(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.take_lease(rollout.id, holder("ana"), MINUTE)
    with pytest.raises(LeaseHeldError):
        ledger.take_lease(rollout.id, holder("bob"), MINUTE, replacing="token-carl")
    taken = ledger.take_lease(rollout.id, holder("bob"), MINUTE, replacing="token-ana")
    assert taken.holder.token == "token-bob"


LEASE_RACERS = 4


def _race_for_lease(location: str, rollout_id: str, n: int, start: Any, results: Any) -> None:
    with open_ledger(location) as ledger:
        start.wait()
        try:
            ledger.take_lease(rollout_id, holder(f"racer{n}", pid=n), MINUTE)
            results.put(("won", n))
        except LeaseHeldError as error:
            results.put(("refused", error.lease.holder.pid))


def test_racing_processes_let_exactly_one_take_the_lease(backend: Backend) -> None:
    with open_ledger(backend.location) as ledger:
        rollout = ledger.start_rollout(new_rollout())
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(LEASE_RACERS), context.Queue()
    racers = [
        context.Process(
            target=_race_for_lease, args=(backend.location, rollout.id, n, start, results)
        )
        for n in range(LEASE_RACERS)
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    winners = [n for verdict, n in outcomes if verdict == "won"]
    assert len(winners) == 1
    assert [n for verdict, n in outcomes if verdict == "refused"] == winners * (LEASE_RACERS - 1)
    with open_ledger(backend.location) as ledger:
        assert ledger.lease(rollout.id).holder.pid == winners[0]  # type: ignore[union-attr]


def test_a_guarded_update_never_overwrites_a_pause_or_abort(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.update_rollout(rollout.id, status="aborted")  # from another shell
    with pytest.raises(RolloutChangedError) as changed:
        ledger.update_rollout(rollout.id, status="running", expect=("running", "waiting"))
    assert changed.value.rollout.status == "aborted"
    assert ledger.get_rollout(rollout.id).status == "aborted"


def test_a_passed_gate_and_the_ring_deployment_are_written_together(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    ledger.record_gate_passed(rollout.id, FLEET, "canary", "a1b2c3d", ["1 of 1 hosts passed"])
    (gate,) = ledger.gate_results(rollout.id)
    assert (gate.ring, gate.outcome, gate.reasons) == ("canary", "passed", ("1 of 1 hosts passed",))
    deployment = ledger.ring_deployments(FLEET)["canary"]
    assert (deployment.commit, deployment.rollout_id, deployment.at) == (
        "a1b2c3d",
        rollout.id,
        gate.at,
    )
    with pytest.raises(UnknownRolloutError):
        ledger.record_gate_passed("nope", FLEET, "main", "a1b2c3d", [])
    assert len(ledger.gate_results(rollout.id)) == 1 and len(ledger.ring_deployments(FLEET)) == 1


def test_a_version_1_ledger_is_upgraded_and_keeps_its_rollouts(backend: Backend) -> None:
    with open_ledger(backend.location) as ledger:
        rollout = ledger.start_rollout(new_rollout())
        ledger.record_host(rollout.id, "canary", 0, "web-1", "apply", "changed")
    backend.execute("DROP TABLE {patchring}.leases")  # what a version-1 ledger looks like
    backend.execute("ALTER TABLE {patchring}.rollouts DROP COLUMN change_ticket")
    backend.set_schema_version(1)
    with open_ledger(backend.location) as upgraded:
        assert upgraded.get_rollout(rollout.id) == rollout
        assert [o.host for o in upgraded.host_outcomes(rollout.id)] == ["web-1"]
        assert upgraded.take_lease(rollout.id, holder(), MINUTE).live
    with open_ledger(backend.location) as reopened:  # upgraded once, durably
        assert reopened.lease(rollout.id) is not None
    if backend.name == "sqlite":
        with sqlite3.connect(backend.location) as db:
            assert db.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]
        db.close()
    else:
        with psycopg.connect(backend.location) as pg:
            found = pg.execute("SELECT version FROM patchring.schema_version").fetchall()
            assert found == [(SCHEMA_VERSION,)]


def test_a_version_2_ledger_gains_the_change_ticket_and_keeps_its_rollouts(
    backend: Backend,
) -> None:
    with open_ledger(backend.location) as ledger:
        old = ledger.start_rollout(new_rollout())
    backend.execute("ALTER TABLE {patchring}.rollouts DROP COLUMN change_ticket")
    backend.set_schema_version(2)
    with open_ledger(backend.location) as upgraded:
        assert upgraded.get_rollout(old.id).change_ticket is None
        upgraded.update_rollout(old.id, status="aborted")
        ticketed = upgraded.start_rollout(
            new_rollout().model_copy(update={"change_ticket": "CHG0042"})
        )
    with open_ledger(backend.location) as reopened:
        assert reopened.get_rollout(ticketed.id).change_ticket == "CHG0042"


def test_a_version_1_ledger_opened_by_racing_processes_is_upgraded_once(backend: Backend) -> None:
    with open_ledger(backend.location) as ledger:
        ledger.start_rollout(new_rollout())
    backend.execute("DROP TABLE {patchring}.leases")
    backend.execute("ALTER TABLE {patchring}.rollouts DROP COLUMN change_ticket")
    backend.set_schema_version(1)
    racers = [_python(RACER, backend.location, f"racer-{n}@host") for n in range(3)]
    _say(racers, "open\n")
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    _say(racers, "start\n")
    outputs = [racer.communicate(timeout=60)[0].split() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert [words[0] for words in outputs] == ["refused"] * 3  # the old rollout is still active


# --- what only one backend can show ---


def test_sqlite_location_forms(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.db"
    with open_ledger(f"sqlite:///{target}") as ledger:
        ledger.start_rollout(new_rollout())
    with open_ledger(target) as same:
        assert same.active_rollout(FLEET) is not None
    with pytest.raises(LedgerError, match="unsupported ledger location 'mysql://x/y'"):
        open_ledger("mysql://x/y")
    with pytest.raises(LedgerError, match=r"unsupported ledger location 'sqlite://b\.db'"):
        open_ledger("sqlite://b.db")


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder\n")
    with pytest.raises(LedgerError) as refused:
        open_ledger(tmp_path / "state" / "ledger" / "rollouts.db")
    assert refused.value.message.startswith(f"cannot create the ledger folder {tmp_path}/state")
    assert refused.value.hint == (
        f"{tmp_path}/state is a file where a folder is needed: move it away"
    )


def test_sqlite_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    junk = tmp_path / "ledger.db"
    junk.write_bytes(b"certainly not sqlite\n" * 100)
    with pytest.raises(LedgerError) as refused:
        open_ledger(junk)
    assert "is not a readable SQLite ledger" in (refused.value.hint or "")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE songs (title TEXT)")
    db.close()
    with pytest.raises(LedgerSchemaError, match="not a patchring ledger"):
        open_ledger(foreign)


def test_sqlite_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with open_ledger(path) as ledger:
        rollout = ledger.start_rollout(new_rollout())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = _python(
        """
        import sys
        from orchestrator.store.ledger import open_ledger
        with open_ledger(sys.argv[1]) as ledger:
            print("open", flush=True)
            ledger.approve(sys.argv[2], "main", "ana", "waited")
        print("done", flush=True)
        """,
        str(path),
        rollout.id,
    )
    assert waiter.stdout is not None and waiter.stdout.readline() == "open\n"
    with pytest.raises(subprocess.TimeoutExpired):
        waiter.wait(timeout=0.5)  # blocked on the lock, not failed
    holder.execute("COMMIT")
    holder.close()
    assert waiter.communicate(timeout=30)[0] == "done\n"
    with open_ledger(path) as ledger:
        assert [a.reason for a in ledger.approvals(rollout.id)] == ["waited"]


def test_unreachable_postgres_is_a_user_error_without_the_password() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://patchring:s3cret@127.0.0.1:{port}/ledger"
    with pytest.raises(LedgerError) as refused:
        open_ledger(url)
    error = refused.value
    assert error.message.startswith(
        f"cannot connect to the ledger database postgresql://patchring:***@127.0.0.1:{port}/ledger"
    )
    assert "s3cret" not in f"{error.message} {error.hint}"
    assert "server is running" in (error.hint or "")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_wait_until_must_carry_a_time_zone(ledger: Ledger) -> None:
    rollout = ledger.start_rollout(new_rollout())
    with pytest.raises(ValueError, match="time zone"):
        ledger.update_rollout(rollout.id, wait_until=datetime(2030, 1, 1) + timedelta(hours=1))
    assert ledger.get_rollout(rollout.id) == rollout
