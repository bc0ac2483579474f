"""The rollout commands when the engine is Temporal (`--engine temporal`, PATCHRING_ENGINE, or
the inventory's `rollout: {engine: temporal}`): `rollout` starts (or joins) the inventory's
workflow, `approve`, `pause`, `resume` and `abort` are signals to it, `status` adds what the
workflow says to what the ledger says. The ledger stays the record: outputs, run records and
exit codes are the embedded commands' own.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.errors import EXIT_OK, UserInputError

ENGINES = ("embedded", "temporal")


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=os.environ.get("PATCHRING_ENGINE") or None,
        help="who drives rollouts: embedded (default) or temporal "
        "(default: $PATCHRING_ENGINE, else the inventory's `rollout: engine:`)",
    )
    parser.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="Temporal frontend (default: $TEMPORAL_ADDRESS, the inventory, 127.0.0.1:7233)",
    )
    parser.add_argument("--temporal-namespace", metavar="NS", help="Temporal namespace")


def temporal_target(args: argparse.Namespace) -> Any:
    """The Temporal service to use, or None for the embedded conductor. The inventory's working
    tree is read only when no flag or variable decides (an unreadable one: embedded)."""
    from orchestrator.model.inventory import RolloutEngineSettings

    settings = RolloutEngineSettings()
    if args.engine is None or (args.engine == "temporal" and not args.temporal_address):
        from orchestrator.inventory.loader import collect_inventory
        from orchestrator.policy.projectsource import WorktreeSource

        inventory, _ = collect_inventory(WorktreeSource(args.repo), args.inventory)
        settings = inventory.rollout if inventory is not None else settings
    if (args.engine or settings.engine) != "temporal":
        return None
    from orchestrator.rollout.temporal.service import TemporalTarget

    return TemporalTarget.chosen(
        args.temporal_address, args.temporal_namespace, settings.temporal, os.environ
    )


def _ledger_location(args: argparse.Namespace) -> str:
    from orchestrator.cli.rollouts import LEDGER_DEFAULT

    location = str(args.ledger or (args.repo / LEDGER_DEFAULT))
    return location if "://" in location else str(Path(location).resolve())


def rollout(args: argparse.Namespace, output: Output, target: Any) -> int:
    """Start the workflow; wait until it ends or waits (soak, approval, window), as the
    embedded `rollout` does (`--wait`: until it ends; `--detach`: not at all)."""
    from orchestrator.cli.project import select
    from orchestrator.cli.rollouts import _conductor, _finish, _history, _notifier
    from orchestrator.cli.runs import Recorder
    from orchestrator.rollout.temporal.messages import RolloutInput
    from orchestrator.rollout.temporal.service import follow_rollout, start_rollout

    for flag, given in (("--to", args.to_ring), ("--plan", args.plan)):
        if given is not None:
            raise UserInputError(f"{flag} is not available with --engine temporal (yet)")
    if args.emergency and not args.reason:
        raise UserInputError("--emergency needs --reason TEXT: the reason is recorded and reported")
    recorder = Recorder.start(args.repo, "rollout", output, ref=args.ref)
    chosen = select(args.repo, args.inventory, None, None, output)
    notifier = _notifier(chosen, output)
    emergency = args.reason if args.emergency else None
    conductor = _conductor(args, output, emergency_reason=emergency, notifier=notifier)
    job = RolloutInput(
        repo=str(args.repo.resolve()),
        inventory=args.inventory,
        ledger=_ledger_location(args),
        ref=args.ref,
        operator=conductor.operator,
        emergency_reason=emergency,
        change_ticket=args.change_ticket,
    )
    started = start_rollout(target, job, conductor.inventory_key)
    output.note(
        f"rollout workflow {started.workflow_id} (run {started.run_id}) on {target.address}"
    )
    if args.detach:
        output.text(
            f"Rollout workflow {started.workflow_id} started (run {started.run_id}) on "
            f"{target.address}; the workers drive it. `patchring status` follows it.\n"
        )
        return EXIT_OK
    state, message, rollout_id = follow_rollout(
        target, conductor.inventory_key, args.wait, output.note
    )
    if rollout_id is None:
        raise UserInputError(f"the rollout workflow ended before it started: {message}")
    with conductor.ledger:
        history = _history(conductor, rollout_id)
    return _finish(
        args, output, recorder, chosen, conductor, state, message, history.rings, history, notifier
    )


def status_lines(args: argparse.Namespace, target: Any) -> tuple[list[str], dict[str, Any]]:
    """What the workflow says, for `status` (text lines, and its JSON document)."""
    from dataclasses import asdict

    from orchestrator.rollout.conductor import inventory_key
    from orchestrator.rollout.temporal.service import describe_rollout

    view = describe_rollout(target, inventory_key(args.repo, args.inventory))
    if view is None:
        return [f"Temporal ({target.address}): no rollout workflow yet"], {"workflow": None}
    status = view.status
    where = f" at ring {status.ring}" if status.ring else ""
    where += f" batch {status.batch + 1}" if status.batch is not None else ""
    lines = [
        f"Temporal ({target.address}, namespace {target.namespace}):",
        f"  workflow {view.workflow_id}  {view.execution}  {status.state}{where}"
        f"  rollout {status.rollout_id or '-'}  {status.batches_done} batch(es) done"
        + (f"  ({status.message})" if status.message else ""),
    ]
    document = {
        "address": target.address,
        "namespace": target.namespace,
        "workflow": {
            "id": view.workflow_id,
            "run_id": view.run_id,
            "execution": view.execution,
            **asdict(status),
        },
    }
    return lines, document


def signal(args: argparse.Namespace, output: Output, target: Any, verb: str) -> int:
    """approve, pause, resume and abort as signals; the workflow writes them to the ledger."""
    from orchestrator.cli.rollouts import _conductor
    from orchestrator.rollout.temporal.messages import Approval
    from orchestrator.rollout.temporal.service import signal_rollout

    conductor = _conductor(args, output)
    with conductor.ledger:
        active = conductor.ledger.active_rollout(conductor.inventory_key)
    if active is None:
        raise UserInputError(
            f"no active rollout to {verb}", hint="`patchring status` lists recent rollouts"
        )
    approval = None
    if verb == "approve":
        rings = [r.name for r in active.plan.rings]
        if args.ring not in rings:
            raise UserInputError(
                f"ring '{args.ring}' is not in rollout {active.id} (rings: {', '.join(rings)})"
            )
        approval = Approval(ring=args.ring, who=conductor.operator, reason=args.reason)
    signal_rollout(target, conductor.inventory_key, verb, approval)
    said = {
        "approve": f"Approved ring {args.ring} of rollout {active.id} by {conductor.operator}: "
        f"{getattr(args, 'reason', '')}\nIts workflow continues by itself.",
        "pause": f"Rollout {active.id} paused.",
        "resume": f"Rollout {active.id} resumed; its workflow continues.",
        "abort": f"Rollout {active.id} aborted; hosts keep what was applied.",
    }[verb]
    output.text(said + "\n")
    return EXIT_OK
