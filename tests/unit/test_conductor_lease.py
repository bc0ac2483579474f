"""The conductor's side of the one-driver rule, with a real SQLite ledger and Git repo and no
hosts: the lease is held for a drive and refused to a second conductor, a dead driver on this
machine is taken over at once, the heartbeat keeps the lease, a pause or abort written by another
command stops the driver at its next step, a ring ref that lags the ledger is repaired, a halted
rollout says what to do, and `status` says when a `running` rollout has no live driver."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.gitops.commits import resolve_ref, ring_refs
from orchestrator.rollout.conductor import Conductor, RolloutHaltedError
from orchestrator.rollout.lease import describe_driver, process_scope, this_process
from orchestrator.store.ledger import (
    LeaseHeldError,
    LeaseHolder,
    Ledger,
    NewRollout,
    PlannedRing,
    Rollout,
    RolloutChangedError,
    RolloutPlan,
    open_ledger,
)

PLAN = RolloutPlan(rings=(PlannedRing(name="canary", batches=(("web-1",),)),))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    _git(folder, "init", "-q")
    (folder / "README").write_text("one\n")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", "one")
    (folder / "README").write_text("two\n")
    _git(folder, "commit", "-qam", "two")
    return folder


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "ledger.db") as opened:
        yield opened


def conductor(repo: Path, ledger: Ledger, who: str = "ana@laptop") -> Conductor:
    return Conductor(repo=repo, inventory="inventory", ledger=ledger, operator=who)


def started(repo: Path, ledger: Ledger) -> Rollout:
    one = conductor(repo, ledger)
    return ledger.start_rollout(
        NewRollout(
            inventory_key=one.inventory_key,
            commit=resolve_ref(repo, "HEAD"),
            started_by="ana@laptop",
            plan=PLAN,
        )
    )


def test_a_second_conductor_is_refused_while_the_first_holds_the_lease(
    repo: Path, ledger: Ledger
) -> None:
    rollout = started(repo, ledger)
    first, second = conductor(repo, ledger), conductor(repo, ledger, "bob@ci")
    with first.leased(rollout):
        lease = ledger.lease(rollout.id)
        assert lease is not None and lease.live and lease.holder.operator == "ana@laptop"
        with pytest.raises(LeaseHeldError, match="is being driven by ana@laptop:"):
            second.drive(rollout)
        with pytest.raises(LeaseHeldError):
            second.rollback(rollout)
        assert ledger.get_rollout(rollout.id) == rollout  # the refused one wrote nothing
    assert ledger.lease(rollout.id) is None  # released at the end
    with second.leased(rollout):
        assert ledger.lease(rollout.id).holder.operator == "bob@ci"  # type: ignore[union-attr]


def test_a_dead_driver_on_this_machine_is_taken_over_at_once(repo: Path, ledger: Ledger) -> None:
    rollout = started(repo, ledger)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_out())
    dead = LeaseHolder(
        token="dead-token",
        operator="ana@laptop",
        hostname="laptop",
        pid=int(gone.stdout),
        scope=process_scope(),
    )
    ledger.take_lease(rollout.id, dead, timedelta(hours=1))
    assert describe_driver(ledger.lease(rollout.id)).startswith(
        f"driver lost: pid {dead.pid} on laptop, last heartbeat "
    )
    notes: list[str] = []
    taker = conductor(repo, ledger, "bob@ci")
    taker.note = notes.append
    with taker.leased(rollout):
        assert ledger.lease(rollout.id).holder.operator == "bob@ci"  # type: ignore[union-attr]
    assert notes == [f"took over rollout {rollout.id} from ana@laptop:{dead.pid}, now gone"]


def test_a_live_driver_elsewhere_is_not_taken_over(repo: Path, ledger: Ledger) -> None:
    rollout = started(repo, ledger)
    elsewhere = LeaseHolder(
        token="far", operator="ci@runner", hostname="runner", pid=1, scope="another machine"
    )
    ledger.take_lease(rollout.id, elsewhere, timedelta(hours=1))
    assert describe_driver(ledger.lease(rollout.id)).startswith("driven by ci@runner:1 since ")
    with pytest.raises(LeaseHeldError):
        conductor(repo, ledger).drive(rollout)


def test_the_heartbeat_renews_the_lease_while_a_step_runs(repo: Path, ledger: Ledger) -> None:
    rollout = started(repo, ledger)
    driver = conductor(repo, ledger)
    driver.heartbeat_every = timedelta(milliseconds=20)
    with driver.leased(rollout):
        first = ledger.lease(rollout.id)
        assert first is not None
        deadline = time.monotonic() + 30
        while (now := ledger.lease(rollout.id)) is not None and now.heartbeat_at == (
            first.heartbeat_at
        ):
            assert time.monotonic() < deadline, "no heartbeat within 30 s"
            time.sleep(0.01)
        assert now is not None and now.expires_at > first.expires_at
        assert now.taken_at == first.taken_at


@pytest.mark.parametrize("written", ["paused", "aborted", "halted"])
def test_a_status_written_by_another_command_stops_the_driver(
    repo: Path, ledger: Ledger, written: str
) -> None:
    rollout = started(repo, ledger)
    driver = conductor(repo, ledger)
    with driver.leased(rollout):
        driver._checkpoint(rollout.id)  # still ours, still running
        ledger.update_rollout(rollout.id, status=written)  # type: ignore[arg-type]
        with pytest.raises(RolloutChangedError) as stopped:
            driver._checkpoint(rollout.id)
        assert stopped.value.rollout.status == written


def test_a_ring_ref_that_lags_the_ledger_is_repaired_by_the_next_driver(
    repo: Path, ledger: Ledger
) -> None:
    rollout = started(repo, ledger)
    # what a kill right after the gate's ledger write leaves: the ledger moved, the ref did not
    ledger.record_gate_passed(rollout.id, conductor(repo, ledger).inventory_key, "canary",
                              rollout.commit, [])  # fmt: skip
    assert "canary" not in ring_refs(repo)
    with conductor(repo, ledger).leased(rollout):
        assert ring_refs(repo) == {"canary": rollout.commit}
    log = _git(repo, "reflog", "show", "--format=%gs", "refs/patchring/rings/canary")
    assert f"repaired: rollout {rollout.id} passed ring canary" in log


def test_rollout_on_a_halted_rollout_says_what_to_do_and_does_nothing(
    repo: Path, ledger: Ledger
) -> None:
    rollout = started(repo, ledger)
    ledger.record_gate(rollout.id, "canary", "failed", ["1 of 1 hosts failed (budget 0)"])
    halted = ledger.update_rollout(rollout.id, status="halted")
    with pytest.raises(RolloutHaltedError) as refused:
        conductor(repo, ledger).drive(halted)
    error = refused.value
    assert error.exit_code == 3
    assert error.message == (
        f"rollout {rollout.id} is halted at ring canary: 1 of 1 hosts failed (budget 0); "
        "nothing was done"
    )
    assert "`patchring rollback`" in (error.hint or "") and "`patchring abort`" in (
        error.hint or ""
    )
    assert ledger.get_rollout(rollout.id) == halted and ledger.lease(rollout.id) is None


def test_a_driver_with_no_lease_or_a_stale_one_is_reported_lost(repo: Path, ledger: Ledger) -> None:
    assert describe_driver(None) == "no driver; run `patchring rollout` to resume"
    rollout = started(repo, ledger)
    far = LeaseHolder(token="far", operator="ci@runner", hostname="runner", pid=7, scope=None)
    ledger.take_lease(rollout.id, far, timedelta(0))  # its heartbeat stopped: expired
    assert describe_driver(ledger.lease(rollout.id)) == (
        "driver lost: pid 7 on runner, last heartbeat 0 s ago; run `patchring rollout` to resume"
    )
    me = this_process("ana@laptop")
    assert me.pid > 0 and me.scope == process_scope() and len(me.token) == 32


def _out() -> dict[str, object]:
    return {"capture_output": True, "text": True, "check": True}
