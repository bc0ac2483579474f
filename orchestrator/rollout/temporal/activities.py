"""Temporal activities: each runs one `steps` function in a thread while the event loop
heartbeats (with the hosts done so far), and turns our errors into Temporal failures.

Errors a retry cannot mend (an invalid policy or inventory, a rollout paused or aborted from
outside, a host of another site) are non-retryable `ApplicationError`s typed by their class
name; anything else (a lost connection, a killed worker) is retried by the activity's
RetryPolicy, and the steps are idempotent for it. Results are small (`BatchDone`: a ref and
counts); per-host outcomes stay in the ledger.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from orchestrator.errors import UserInputError, ValidationError
from orchestrator.rollout.temporal import steps
from orchestrator.rollout.temporal.messages import (
    Approval,
    BatchDone,
    Begun,
    GateObserved,
    RolloutInput,
    Verdict,
)

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats while a step works (the workflow's heartbeat timeout is larger)."""

T = TypeVar("T")

# One step at a time per worker process: pyinfra's engine keeps per-run state of its own.
_ONE_STEP = threading.Lock()


def _failure(error: Exception) -> ApplicationError:
    permanent = isinstance(
        error,
        UserInputError | ValidationError | steps.SiteMismatchError | steps.RebootWindowError,
    )
    return ApplicationError(str(error), type=type(error).__name__, non_retryable=permanent)


async def _run(step: Callable[..., T], *args: Any, progress: list[str] | None = None) -> T:
    def guarded() -> T:
        with _ONE_STEP:
            return step(*args)

    work = asyncio.ensure_future(asyncio.to_thread(guarded))
    while True:
        done, _ = await asyncio.wait({work}, timeout=HEARTBEAT_EVERY)
        if done:
            break
        activity.heartbeat(list(progress or ()))
    try:
        return work.result()
    except ApplicationError:
        raise
    except Exception as error:  # every error crosses to the workflow as a Temporal failure
        raise _failure(error) from error


@activity.defn(name="patchring.begin")
async def begin(job: RolloutInput) -> Begun:
    return await _run(steps.begin, job)


@activity.defn(name="patchring.window")
async def window(job: RolloutInput, rollout_id: str, index: int) -> Verdict:
    return await _run(steps.window, job, rollout_id, index)


@activity.defn(name="patchring.open_batch")
async def open_batch(job: RolloutInput, rollout_id: str, index: int, batch: int) -> None:
    await _run(steps.open_batch, job, rollout_id, index, batch)


@activity.defn(name="patchring.apply_site_batch")
async def apply_site_batch(
    job: RolloutInput, rollout_id: str, index: int, batch: int, site: str, hosts: list[str]
) -> BatchDone:
    """One site's hosts of a batch, on that site's worker; heartbeats name the hosts done."""
    done: list[str] = []
    counts = await _run(
        steps.apply_site_batch,
        job,
        rollout_id,
        index,
        batch,
        site,
        hosts,
        done.append,
        progress=done,
    )
    return BatchDone(ref=f"{rollout_id}/{index}/{batch}/{site}", counts=counts)


@activity.defn(name="patchring.close_batch")
async def close_batch(job: RolloutInput, rollout_id: str, index: int, batch: int) -> Verdict:
    return await _run(steps.close_batch, job, rollout_id, index, batch)


@activity.defn(name="patchring.observe_gate_site")
async def observe_gate_site(
    job: RolloutInput, rollout_id: str, index: int, site: str, hosts: list[str]
) -> GateObserved:
    """One site's ring hosts checked for the gate, on that site's worker."""
    counts, health = await _run(steps.observe_gate_site, job, rollout_id, index, site, hosts)
    return GateObserved(ref=f"{rollout_id}/{index}/gate/{site}", counts=counts, health=health)


@activity.defn(name="patchring.gate")
async def gate(job: RolloutInput, rollout_id: str, index: int, health: list[str]) -> Verdict:
    return await _run(steps.gate, job, rollout_id, index, health)


@activity.defn(name="patchring.promotion")
async def promotion(job: RolloutInput, rollout_id: str, index: int) -> Verdict:
    return await _run(steps.promotion, job, rollout_id, index)


@activity.defn(name="patchring.complete")
async def complete(job: RolloutInput, rollout_id: str) -> Verdict:
    return await _run(steps.complete, job, rollout_id)


@activity.defn(name="patchring.approve")
async def approve(job: RolloutInput, rollout_id: str, approval: Approval) -> None:
    await _run(steps.approve, job, rollout_id, approval.ring, approval.who, approval.reason)


@activity.defn(name="patchring.set_status")
async def set_status(job: RolloutInput, rollout_id: str, status: str) -> None:
    await _run(steps.set_status, job, rollout_id, status)


@activity.defn(name="patchring.release")
async def release(job: RolloutInput, rollout_id: str) -> None:
    await _run(steps.release, job, rollout_id)


@activity.defn(name="patchring.halted_reason")
async def halted_reason(job: RolloutInput, rollout_id: str) -> str:
    return await _run(steps.halted_reason, job, rollout_id)


CENTRAL_ACTIVITIES: list[Callable[..., Any]] = [
    begin,
    window,
    open_batch,
    close_batch,
    gate,
    promotion,
    complete,
    approve,
    set_status,
    release,
    halted_reason,
]
"""Steps run by the workflow worker: ledger writes, and judging the gate (no host
reached, but by an automatic rollback)."""
SITE_ACTIVITIES: list[Callable[..., Any]] = [apply_site_batch, observe_gate_site]
"""Steps run by a site's worker, on hosts of that site only."""
