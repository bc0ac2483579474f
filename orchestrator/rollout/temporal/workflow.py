"""The `Rollout` workflow: rings -> batches (one activity per site) -> budget -> gate (each
site checks its hosts, then it is judged) -> approval and soak -> next ring, every step one
activity of `activities`.

The workflow only sequences and waits: what to do and whether to go on is decided by the
embedded conductor's code inside the activities, which write the ledger. Soak and maintenance
windows are durable timers (`wait_condition` with a timeout, so an abort or pause cuts them
short); approve, pause, resume and abort are signals; `status` is a query. Deterministic and
side-effect free as Temporal's sandbox requires: it imports only `messages` (passed through)
and names activities by their registered names.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from orchestrator.rollout.temporal.messages import (
        Approval,
        BatchDone,
        Begun,
        GateObserved,
        RingPlan,
        RolloutInput,
        Verdict,
        WorkflowStatus,
        site_queue,
    )

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
"""A site worker that stops heartbeating this long (killed, cut off) has its batch retried."""
BATCH_TIMEOUT = timedelta(hours=6)
STEP_TIMEOUT = timedelta(hours=1)


class _Stop(Exception):
    """The rollout ends here with `verdict` (not a failure of the workflow itself)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


@workflow.defn(name="PatchringRollout")
class Rollout:
    def __init__(self) -> None:
        self._job: RolloutInput | None = None
        self._rollout_id: str | None = None
        self._state = "starting"
        self._ring: str | None = None
        self._batch: int | None = None
        self._message = ""
        self._approvals: list[Approval] = []
        self._recorded: set[str] = set()
        self._paused = False
        self._aborted = False
        self._batches_done = 0

    # -- signals and the query ---------------------------------------------------------

    @workflow.signal
    def approve(self, approval: Approval) -> None:
        self._approvals.append(approval)

    @workflow.signal
    def pause(self) -> None:
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False

    @workflow.signal
    def abort(self) -> None:
        self._aborted = True

    @workflow.query
    def status(self) -> WorkflowStatus:
        return WorkflowStatus(
            rollout_id=self._rollout_id,
            state=self._state,
            ring=self._ring,
            batch=self._batch,
            message=self._message,
            approved=sorted({a.ring for a in self._approvals}),
            batches_done=self._batches_done,
        )

    # -- the run -----------------------------------------------------------------------

    @workflow.run
    async def run(self, job: RolloutInput) -> Verdict:
        self._job = job
        try:
            verdict = await self._drive(job)
        except _Stop as stop:
            verdict = stop.verdict
        except ActivityError as error:  # a step failed for good: the rollout stops there
            cause = error.cause
            kind = cause.type if isinstance(cause, ApplicationError) else None
            verdict = Verdict(state="failed", message=f"{kind or 'error'}: {cause or error}")
        if self._rollout_id is not None:  # it drives no more: `rollback` or a new one may
            with _expected(ActivityError):
                await self._step("patchring.release", job, self._rollout_id)
        self._state, self._message = verdict.state, verdict.message
        return dataclasses.replace(verdict, rollout_id=self._rollout_id)

    async def _drive(self, job: RolloutInput) -> Verdict:
        begun: Begun = await self._step("patchring.begin", job, result_type=Begun)
        self._rollout_id = begun.rollout_id
        if begun.status == "halted":
            reason = await self._step("patchring.halted_reason", job, begun.rollout_id)
            return Verdict(state="halted", message=str(reason))
        if begun.status == "paused":
            self._paused = True
        for index in range(begun.ring, len(begun.rings)):
            ring = begun.rings[index]
            self._ring, self._batch = ring.name, None
            await self._control()
            await self._hold("patchring.window", index)
            for batch, sites in enumerate(ring.batches):
                if f"{ring.name}/{batch}" in begun.completed:
                    continue
                await self._control()
                await self._run_batch(index, ring, batch, sites)
            await self._gate(index, ring)
            await self._hold("patchring.promotion", index, ring)
        return await self._step("patchring.complete", job, self._rollout_id, result_type=Verdict)

    async def _run_batch(
        self, index: int, ring: RingPlan, batch: int, sites: dict[str, list[str]]
    ) -> None:
        """Every site's share of the batch at once, each on its own site's task queue."""
        assert self._job is not None
        self._state, self._batch, self._message = "running", batch, ""
        await self._step("patchring.open_batch", self._job, self._rollout_id, index, batch)
        await self._on_sites(
            "patchring.apply_site_batch",
            BatchDone,
            {
                site: [self._job, self._rollout_id, index, batch, site, h]
                for site, h in sites.items()
            },
        )
        self._batches_done += 1
        verdict = await self._step(
            "patchring.close_batch", self._job, self._rollout_id, index, batch, result_type=Verdict
        )
        if verdict.state != "running":
            raise _Stop(verdict)

    async def _gate(self, index: int, ring: RingPlan) -> None:
        """Each site checks its ring hosts, then the gate is judged on what they saw. An
        inconclusive gate pauses the rollout; `resume` takes the gate again."""
        sites: dict[str, list[str]] = {}
        for batch in ring.batches:
            for site, hosts in batch.items():
                sites.setdefault(site, []).extend(hosts)
        while True:
            self._state, self._batch = "gate", None
            observed = await self._on_sites(
                "patchring.observe_gate_site",
                GateObserved,
                {s: [self._job, self._rollout_id, index, s, h] for s, h in sites.items()},
            )
            health = [result for part in observed for result in part.health]
            verdict = await self._step(
                "patchring.gate", self._job, self._rollout_id, index, health, result_type=Verdict
            )
            if verdict.state == "running":
                return
            if verdict.state != "paused":
                raise _Stop(verdict)
            self._message, self._paused = verdict.message, True
            await self._control()

    async def _hold(self, step: str, index: int, ring: RingPlan | None = None) -> None:
        """Ask `step` whether the rollout may go on; wait (a durable timer, or an approval)
        as long as it says so."""
        while True:
            verdict = await self._step(
                step, self._job, self._rollout_id, index, result_type=Verdict
            )
            if verdict.state == "running":
                return
            self._state, self._message = (
                f"waiting-{verdict.wait_reason or 'window'}",
                verdict.message,
            )
            if verdict.wait_reason == "approval" and ring is not None:
                await workflow.wait_condition(
                    lambda name=ring.name: (  # type: ignore[misc]
                        any(a.ring == name for a in self._approvals)
                        or self._aborted
                        or self._paused
                    )
                )
            elif verdict.wait_seconds is None:  # a window that never opens
                raise _Stop(verdict)
            else:
                with _expected(asyncio.TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._aborted or self._paused,
                        timeout=timedelta(seconds=verdict.wait_seconds),
                    )
            await self._control()

    async def _control(self) -> None:
        """Between steps: record approvals, stop for an abort, wait out a pause."""
        assert self._job is not None
        for approval in self._approvals:
            if approval.ring not in self._recorded:
                await self._step("patchring.approve", self._job, self._rollout_id, approval)
                self._recorded.add(approval.ring)
        if self._aborted:
            await self._step("patchring.set_status", self._job, self._rollout_id, "aborted")
            raise _Stop(Verdict(state="aborted", message="aborted by a signal"))
        if self._paused:
            await self._step("patchring.set_status", self._job, self._rollout_id, "paused")
            self._state = "paused"
            await workflow.wait_condition(lambda: not self._paused or self._aborted)
            if self._aborted:
                await self._control()
            await self._step("patchring.set_status", self._job, self._rollout_id, "running")
            self._state = "running"

    async def _on_sites(
        self, name: str, result_type: type, args_by_site: dict[str, list[object]]
    ) -> list[Any]:
        """One activity per site, all at once, each on its own site's task queue."""
        return await asyncio.gather(
            *(
                workflow.execute_activity(
                    name,
                    args=args,
                    result_type=result_type,
                    task_queue=site_queue(site),
                    start_to_close_timeout=BATCH_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RETRY,
                )
                for site, args in args_by_site.items()
            )
        )

    async def _step(self, name: str, *args: object, result_type: type | None = None) -> Any:
        return await workflow.execute_activity(
            name,
            args=list(args),
            result_type=result_type,
            start_to_close_timeout=STEP_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )


class _expected:
    """Like contextlib.suppress (which the sandbox would re-import on every run)."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)
