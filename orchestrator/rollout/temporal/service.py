"""Talking to Temporal: where it is, starting and following a rollout workflow, its signals
and query, and the workers (the workflow worker, a site's worker).

The CLI calls these plain (synchronous) functions; each runs its own event loop. The only
module besides `activities` and `workflow` that imports temporalio.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from orchestrator.errors import UserInputError
from orchestrator.model.inventory import TemporalSettings
from orchestrator.rollout.temporal.activities import CENTRAL_ACTIVITIES, SITE_ACTIVITIES
from orchestrator.rollout.temporal.messages import (
    ROLLOUT_QUEUE,
    Approval,
    RolloutInput,
    WorkflowStatus,
    site_queue,
    workflow_id,
)
from orchestrator.rollout.temporal.workflow import Rollout

DEFAULT_ADDRESS = "127.0.0.1:7233"
T = TypeVar("T")


class TemporalUnavailableError(UserInputError):
    """The Temporal service did not answer (nothing was done)."""


class NoWorkflowError(UserInputError):
    """No rollout workflow for this inventory on the Temporal service."""


@dataclass(frozen=True)
class TemporalTarget:
    address: str
    namespace: str

    @classmethod
    def chosen(
        cls,
        address: str | None,
        namespace: str | None,
        settings: TemporalSettings,
        environ: Mapping[str, str],
    ) -> TemporalTarget:
        """The command line wins, then TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, then the
        inventory's `rollout: temporal:`, then a local dev server."""
        return cls(
            address=address
            or environ.get("TEMPORAL_ADDRESS")
            or settings.address
            or DEFAULT_ADDRESS,
            namespace=namespace
            or environ.get("TEMPORAL_NAMESPACE")
            or settings.namespace
            or "default",
        )


def _run(work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(_guarded(work))


async def _guarded(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except RPCError as error:
        raise TemporalUnavailableError(f"Temporal: {error}") from error


async def _connect(target: TemporalTarget) -> Client:
    try:
        return await Client.connect(target.address, namespace=target.namespace)
    except RuntimeError as error:  # the core SDK reports a failed connection so
        raise TemporalUnavailableError(
            f"cannot reach Temporal at {target.address} (namespace {target.namespace}): {error}",
            hint="start it (`temporal server start-dev`), or pass --temporal-address HOST:PORT "
            "(or set TEMPORAL_ADDRESS)",
        ) from error


@dataclass(frozen=True)
class Started:
    workflow_id: str
    run_id: str


def start_rollout(target: TemporalTarget, job: RolloutInput, inventory_key: str) -> Started:
    """Start the inventory's rollout workflow (or join the one that runs)."""

    async def work() -> Started:
        client = await _connect(target)
        handle = await client.start_workflow(
            Rollout.run,
            job,
            id=workflow_id(inventory_key),
            task_queue=ROLLOUT_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return Started(handle.id, handle.result_run_id or "")

    return _run(work)


ENDED_AS = {"failed": "halted"}
"""Workflow verdicts in the conductor's words (a step that failed for good halts it)."""


UNPICKED_AFTER = 15.0
"""Seconds after which a workflow no worker has begun is worth a note."""


def follow_rollout(
    target: TemporalTarget,
    inventory_key: str,
    to_the_end: bool,
    note: Callable[[str], None] = lambda text: None,
    every: float = 0.5,
) -> tuple[str, str, str | None]:
    """Follow the workflow until it ends, or (unless `to_the_end`) waits for a soak, an
    approval, a window or a resume: (state, message, rollout id)."""

    async def work() -> tuple[str, str, str | None]:
        client = await _connect(target)
        handle = client.get_workflow_handle_for(Rollout.run, workflow_id(inventory_key))
        began = asyncio.get_running_loop().time()
        noted = False
        while True:
            described = await handle.describe()
            if described.status != WorkflowExecutionStatus.RUNNING:
                try:
                    verdict = await handle.result()
                except WorkflowFailureError as error:
                    return "halted", str(error.cause or error), None
                state = ENDED_AS.get(verdict.state, verdict.state)
                return state, verdict.message, verdict.rollout_id
            status = await _status(handle)
            if not to_the_end and status.state.startswith("waiting"):
                return "waiting", status.message, status.rollout_id
            if not to_the_end and status.state == "paused":
                message = status.message or "`patchring resume` continues it"
                return "paused", message, status.rollout_id
            late = asyncio.get_running_loop().time() - began > UNPICKED_AFTER
            if status.state == "starting" and late and not noted:
                note(
                    f"no worker has begun workflow {handle.id} yet: is `patchring worker "
                    f"--workflows --address {target.address}` running?"
                )
                noted = True
            await asyncio.sleep(every)

    return _run(work)


@dataclass(frozen=True)
class WorkflowView:
    workflow_id: str
    run_id: str
    execution: str
    """RUNNING, COMPLETED, FAILED, TERMINATED, ..."""
    status: WorkflowStatus


QUERY_TIMEOUT = 5.0


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowStatus:
    """The workflow's `status` query; a query needs a workflow worker to answer it."""
    try:
        return await asyncio.wait_for(handle.query(Rollout.status), QUERY_TIMEOUT)
    except (TimeoutError, RPCError):
        return WorkflowStatus(rollout_id=None, state="starting", message="no worker answers")


def _execution_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name if status is not None else "UNKNOWN"


def describe_rollout(target: TemporalTarget, inventory_key: str) -> WorkflowView | None:
    """The inventory's latest rollout workflow and what it says it does (None: none yet)."""

    async def work() -> WorkflowView | None:
        client = await _connect(target)
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(inventory_key))
        try:
            described = await handle.describe()
        except RPCError as error:
            if "not found" in str(error).lower():
                return None
            raise
        status = await _status(handle)
        return WorkflowView(handle.id, described.run_id, _execution_name(described.status), status)

    return _run(work)


def signal_rollout(
    target: TemporalTarget, inventory_key: str, name: str, approval: Approval | None = None
) -> None:
    """Send `approve` (with its approval), `pause`, `resume` or `abort` to the workflow."""

    async def work() -> None:
        client = await _connect(target)
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(inventory_key))
        try:
            described = await handle.describe()
        except RPCError as error:
            raise NoWorkflowError(
                f"no rollout workflow {workflow_id(inventory_key)} on {target.address}"
            ) from error
        if described.status != WorkflowExecutionStatus.RUNNING:
            raise NoWorkflowError(
                f"rollout workflow {handle.id} is {_execution_name(described.status)}, "
                f"not running: nothing to {name}"
            )
        if approval is not None:
            await handle.signal(name, approval)
        else:
            await handle.signal(name)

    _run(work)


def run_worker(target: TemporalTarget, site: str | None, workflows: bool) -> None:
    """Poll the site's task queue (its hosts' batches) and/or the rollout queue (workflows and
    their central steps) until SIGTERM or SIGINT; the current step may finish for 10 s."""

    async def work() -> None:
        client = await _connect(target)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        workers = []
        if workflows:
            workers.append(
                Worker(
                    client,
                    task_queue=ROLLOUT_QUEUE,
                    workflows=[Rollout],
                    activities=CENTRAL_ACTIVITIES,
                    graceful_shutdown_timeout=timedelta(seconds=10),
                )
            )
        if site is not None:
            workers.append(
                Worker(
                    client,
                    task_queue=site_queue(site),
                    activities=SITE_ACTIVITIES,
                    max_concurrent_activities=1,
                    graceful_shutdown_timeout=timedelta(seconds=10),
                )
            )
        running = [asyncio.create_task(w.run()) for w in workers]
        await stop.wait()
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*running, return_exceptions=True)

    _run(work)
