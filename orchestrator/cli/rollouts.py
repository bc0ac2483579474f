"""Durable rollouts: rollout, status, approve, pause, resume, abort, rollback.

State lives in the ledger (SQLite in `.patchring/ledger.db` by default, PostgreSQL with
`--ledger postgresql://...` or PATCHRING_LEDGER), so any CI job or person can continue it.
Exit codes: 0 completed or waiting (soak, approval, window: not a failure), 3 halted (or the
ledger lost after hosts were changed), 1 refused before anything was done (another process drives
the rollout, a ring requires a change ticket that is missing or malformed, bad flags).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import add_parallel_flag, select
from orchestrator.cli.rollouts_temporal import add_engine_flags, temporal_target
from orchestrator.cli.runs import Recorder, _user
from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK, PatchringError, UserInputError
from orchestrator.model.record import RunStatus
from orchestrator.words import counted

LEDGER_DEFAULT = Path(".patchring") / "ledger.db"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    ledger = argparse.ArgumentParser(add_help=False)
    ledger.add_argument(
        "--ledger",
        default=os.environ.get("PATCHRING_LEDGER"),
        help="ledger location: a SQLite path or postgresql:// URL "
        "(default: <repo>/.patchring/ledger.db, or $PATCHRING_LEDGER)",
    )
    add_engine_flags(ledger)
    p = sub.add_parser(
        "rollout", parents=[common, ledger], help="start or continue a ring-by-ring rollout"
    )
    p.add_argument("--ref", help="commit, tag or branch to roll out (default: HEAD)")
    p.add_argument("--to", dest="to_ring", metavar="RING", help="stop after this ring's gate")
    p.add_argument("--wait", action="store_true", help="block through soak and windows")
    p.add_argument(
        "--detach",
        action="store_true",
        help="with --engine temporal: start the workflow and exit (the workers drive it)",
    )
    p.add_argument(
        "--emergency",
        action="store_true",
        help="skip soak and maintenance windows (needs --reason)",
    )
    p.add_argument("--reason", help="why (recorded; required with --emergency)")
    p.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="roll out exactly a plan saved by `plan --out` (its commit; drifted hosts refused)",
    )
    p.add_argument(
        "--change-ticket",
        metavar="ID",
        default=os.environ.get("PATCHRING_CHANGE_TICKET") or None,
        help="the approved change this rollout belongs to (recorded in the ledger and every "
        "report; rings may require one; default: $PATCHRING_CHANGE_TICKET)",
    )
    p.add_argument("--json", action="store_true", help="print the run record")
    add_parallel_flag(p)
    p.set_defaults(handler=cmd_rollout)
    p = sub.add_parser("status", parents=[common, ledger], help="active and recent rollouts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("approve", parents=[common, ledger], help="approve promotion past a ring")
    p.add_argument("ring")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=cmd_approve)
    for verb, text in (
        ("pause", "pause the active rollout"),
        ("abort", "abort the active rollout"),
        ("resume", "resume a paused rollout and continue it"),
        ("rollback", "roll back the hosts a halted rollout changed"),
    ):
        p = sub.add_parser(verb, parents=[common, ledger], help=text)
        p.add_argument("--reason", help="why (recorded in the run record)")
        p.add_argument("--json", action="store_true", help="print the run record")
        if verb in {"resume", "rollback"}:
            add_parallel_flag(p)
        p.set_defaults(handler=cmd_control, verb=verb)


def _conductor(args: argparse.Namespace, output: Output, **extra: Any) -> Any:
    from orchestrator.rollout.conductor import Conductor
    from orchestrator.store.ledger import open_ledger

    location = args.ledger or (args.repo / LEDGER_DEFAULT)
    notifier = extra.pop("notifier", None)
    if notifier is not None:
        extra["on_event"] = notifier
    return Conductor(
        repo=args.repo,
        inventory=args.inventory,
        ledger=open_ledger(location),
        operator=f"{_user()}@{socket.gethostname()}",
        note=output.note,
        mask=output.mask,
        on_project=lambda project: output.protect(project.secrets),
        parallel=getattr(args, "parallel", None),
        **extra,
    )


def cmd_rollout(args: argparse.Namespace, output: Output) -> int:
    target = temporal_target(args)
    if target is not None:
        from orchestrator.cli import rollouts_temporal

        return rollouts_temporal.rollout(args, output, target)
    if args.emergency and not args.reason:
        raise UserInputError("--emergency needs --reason TEXT: the reason is recorded and reported")
    screen = None
    if args.plan is not None:
        from orchestrator.cli.planfile import rollout_screen

        args.ref, screen = rollout_screen(args, output)
    recorder = Recorder.start(args.repo, "rollout", output, ref=args.ref)
    chosen = select(args.repo, args.inventory, None, None, output)
    if args.to_ring is not None and args.to_ring not in chosen.rings:
        raise UserInputError(
            f"unknown ring '{args.to_ring}' for --to "
            f"(rings: {', '.join(chosen.rings) or 'none defined'})"
        )
    notifier = _notifier(chosen, output)
    conductor = _conductor(
        args,
        output,
        wait=args.wait,
        stop_after=args.to_ring,
        emergency_reason=args.reason if args.emergency else None,
        **({"screen": screen} if screen else {}),
        change_ticket=args.change_ticket,
        notifier=notifier,
    )
    with conductor.ledger, _record_if_ledger_lost(args, output, recorder, chosen, conductor):
        rollout = conductor.start_or_continue(args.ref)
        ticket = f", change ticket {rollout.change_ticket}" if rollout.change_ticket else ""
        output.note(f"rollout {rollout.id} of {rollout.commit[:12]} ({rollout.status}{ticket})")
        state, message, rings = conductor.drive(rollout)
        history = _history(conductor, rollout.id)
    return _finish(
        args, output, recorder, chosen, conductor, state, message, rings, history, notifier
    )


def _notifier(chosen: Any, output: Output) -> Any:
    """The inventory's webhooks, their URLs read now and masked in every output from here on."""
    from orchestrator.notify.webhook import Notifier

    notifier = Notifier(chosen.project.inventory.notifications, os.environ, output.mask)
    output.protect(notifier.secrets)
    return notifier


def cmd_control(args: argparse.Namespace, output: Output) -> int:
    target = temporal_target(args) if args.verb != "rollback" else None
    if target is not None:
        from orchestrator.cli import rollouts_temporal

        return rollouts_temporal.signal(args, output, target, args.verb)
    recorder = Recorder.start(args.repo, "rollout", output, action=args.verb)
    chosen = select(args.repo, args.inventory, None, None, output)
    notifier = _notifier(chosen, output)
    conductor = _conductor(args, output, notifier=notifier)
    with conductor.ledger, _record_if_ledger_lost(args, output, recorder, chosen, conductor):
        active = conductor.ledger.active_rollout(conductor.inventory_key)
        if active is None:
            raise UserInputError(
                f"no active rollout to {args.verb}", hint="`patchring status` lists recent rollouts"
            )
        if args.verb == "pause":
            conductor.ledger.update_rollout(active.id, status="paused")
            output.text(f"Rollout {active.id} paused.\n")
            return EXIT_OK
        if args.verb == "abort":
            conductor.ledger.update_rollout(
                active.id, status="aborted", wait_reason=None, wait_until=None
            )
            output.text(f"Rollout {active.id} aborted; hosts keep what was applied.\n")
            return EXIT_OK
        if args.verb == "resume":
            state, message, rings = conductor.resume(active)
        else:
            from orchestrator.rollout.conductor import RollbackError

            try:
                state, message = conductor.rollback(active)
            except RollbackError as error:
                raise UserInputError(str(error), hint="abort the rollout instead") from error
            rings = []
        history = _history(conductor, active.id)
    return _finish(
        args, output, recorder, chosen, conductor, state, message, rings, history, notifier
    )


def _history(conductor: Any, rollout_id: str) -> Any:
    """The whole rollout as its ledger holds it: every batch of every invocation."""
    from orchestrator.report.rollout_history import rollout_history

    book = conductor.ledger
    return rollout_history(
        book.get_rollout(rollout_id),
        book.host_outcomes(rollout_id),
        book.gate_results(rollout_id),
        book.approvals(rollout_id),
    )


def _finish(
    args: argparse.Namespace,
    output: Output,
    recorder: Recorder,
    chosen: Any,
    conductor: Any,
    state: str,
    message: str,
    rings: list[Any],
    history: Any,
    notifier: Any,
) -> int:
    """Record the rollout as its ledger holds it (not only what this process did); the exit
    code is this invocation's."""
    status: RunStatus = "halted" if state == "halted" else "succeeded"
    commit = history.log.commit
    record, files = recorder.finish(
        chosen,
        status,
        history.apply,
        history.verify,
        history.rings,
        emergency_reason=history.log.emergency_reason or conductor.emergency_reason,
        at=commit,
        project=conductor.project(commit),
        rollout=history.log,
        change_ticket=history.log.change_ticket,
        notifications=notifier.deliveries,
    )
    for failed in (d for d in notifier.deliveries if d.status == "failed"):
        output.error(  # stderr even under --json: CI logs should show it
            f"patchring: warning: notification {failed.event} to webhook {failed.webhook} "
            f"failed after {counted(failed.attempts, 'attempt')}: {failed.error} "
            "(the rollout goes on)"
        )
    if output.json_mode:
        output.document(record.model_dump(mode="json", by_alias=True))
    else:
        from orchestrator.report.rollout_text import rollout_summary

        lines = rollout_summary(
            history.log.id,
            state,
            message,
            history.rings,
            history.apply,
            history.verify,
            history.log.restarts,
        )
        if history.log.change_ticket:
            lines.insert(1, f"  change ticket {history.log.change_ticket}")
        where = ", ".join(str(p) for p in files.values())
        output.text(
            "\n".join(lines) + f"\n\nThis command's run record: {record.id} (reports: {where})\n"
        )
    halted = state == "halted" or any(r.status == "failed" for r in rings)  # auto rollback too
    return EXIT_HOSTS_FAILED if halted else EXIT_OK


class LedgerLostAfterChangesError(PatchringError):
    """The ledger failed after hosts were changed: not "nothing was changed" (exit 1), but a
    rollout that failed part way (exit 3); the run record says what was done."""

    exit_code = EXIT_HOSTS_FAILED


@contextlib.contextmanager
def _record_if_ledger_lost(
    args: argparse.Namespace, output: Output, recorder: Recorder, chosen: Any, conductor: Any
) -> Iterator[None]:
    """A ledger failure before any host was touched stays a plain error; after, the run record
    of what was done is written and the error says the hosts may have changed."""
    from orchestrator.store.ledger import LedgerError

    try:
        yield
    except LedgerError as error:
        if not conductor.hosts_touched:
            raise
        message = f"the ledger failed part way: {error.message}"
        record, _ = recorder.finish(
            chosen,
            "failed",
            list({r.host: r for r in conductor.applied}.values()),
            list({v.host: v for v in conductor.verified}.values()),
            emergency_reason=conductor.emergency_reason,
        )
        if output.json_mode:
            output.document(record.model_dump(mode="json", by_alias=True))
        raise LedgerLostAfterChangesError(
            f"{message}; hosts may have changed ({len(conductor.applied)} applied before it "
            f"failed); run {record.id} records what was done",
            hint=f"{error.hint + '; ' if error.hint else ''}once the ledger is back, "
            "`patchring rollout` resumes from what it recorded",
        ) from error


def cmd_approve(args: argparse.Namespace, output: Output) -> int:
    target = temporal_target(args)
    if target is not None:
        from orchestrator.cli import rollouts_temporal

        return rollouts_temporal.signal(args, output, target, "approve")
    conductor = _conductor(args, output)
    with conductor.ledger:
        active = conductor.ledger.active_rollout(conductor.inventory_key)
        if active is None:
            raise UserInputError("no active rollout to approve")
        rings = [r.name for r in active.plan.rings]
        if args.ring not in rings:
            raise UserInputError(
                f"ring '{args.ring}' is not in rollout {active.id} (rings: {', '.join(rings)})"
            )
        approval = conductor.ledger.approve(active.id, args.ring, conductor.operator, args.reason)
    output.text(
        f"Approved ring {approval.ring} of rollout {active.id} by {approval.who}: "
        f"{approval.reason}\nRun `patchring rollout` to continue.\n"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace, output: Output) -> int:
    conductor = _conductor(args, output)
    with conductor.ledger:
        key = conductor.inventory_key
        recent = conductor.ledger.recent_rollouts(key)
        deployments = conductor.ledger.ring_deployments(key)
        gates = {r.id: conductor.ledger.gate_results(r.id) for r in recent[:1]}
        leases = {r.id: conductor.ledger.lease(r.id) for r in recent if r.active}
    from orchestrator.rollout.lease import describe_driver

    # `running` is what the ledger says; whether a live process drives it is the lease's to say
    drivers = {r.id: describe_driver(leases[r.id]) for r in recent if r.status == "running"}
    target = temporal_target(args)
    temporal: tuple[list[str], dict[str, Any]] | None = None
    if target is not None:
        from orchestrator.cli.rollouts_temporal import status_lines

        temporal = status_lines(args, target)
        drivers = {r.id: "driven by its Temporal workflow" for r in recent if r.active}
    if output.json_mode:
        output.document(
            {
                "schema": "patchring.status/v1",
                **({"temporal": temporal[1]} if temporal else {}),
                "rings": {k: v.model_dump(mode="json") for k, v in deployments.items()},
                "rollouts": [
                    {
                        **r.model_dump(mode="json"),
                        "driver": drivers.get(r.id),
                        "lease": _lease_document(leases.get(r.id)),
                    }
                    for r in recent
                ],
            }
        )
        return EXIT_OK
    lines = ["Rings (last commit that passed each, in rollout order):"]
    lines += [
        f"  {ring:<10} {d.commit[:12]}  rollout {d.rollout_id}  {d.at:%F %H:%M}"
        for ring, d in _in_rollout_order(deployments, recent)
    ] or ["  (none yet)"]
    lines.append("Rollouts (newest first):")
    for r in recent:
        wait = (
            f" ({r.wait_reason} until {r.wait_until:%F %H:%M})"
            if r.wait_until
            else (f" ({r.wait_reason})" if r.wait_reason else "")
        )
        at = (
            f"  at ring {r.plan.rings[r.position.ring].name}"
            if r.position.ring < len(r.plan.rings) and r.status != "completed"
            else ""
        )
        driver = f" ({drivers[r.id]})" if r.id in drivers else ""
        lines.append(
            f"  {r.id}  {r.status}{driver}{wait}  commit {r.commit[:12]}{at}"
            f"  by {r.started_by}"
            + (f"  ticket {r.change_ticket}" if r.change_ticket else "")
            + (f"  EMERGENCY: {r.emergency_reason}" if r.emergency_reason else "")
        )
        for gate in gates.get(r.id, []):
            lines.append(
                f"      gate {gate.ring}: {gate.outcome}"
                + (f" ({'; '.join(gate.reasons)})" if gate.reasons else "")
            )
    if not recent:
        lines.append("  (none)")
    lines += temporal[0] if temporal else []
    output.text("\n".join(lines) + "\n")
    return EXIT_OK


def _in_rollout_order(deployments: dict[str, Any], recent: list[Any]) -> list[tuple[str, Any]]:
    """Rings in the order the newest rollout takes them (rings it does not name last, by name)."""
    order = [ring.name for r in recent[:1] for ring in r.plan.rings]
    rank = {name: index for index, name in enumerate(order)}
    return sorted(deployments.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def _lease_document(lease: Any) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {
        "holder": lease.holder.display,
        "hostname": lease.holder.hostname,
        "pid": lease.holder.pid,
        "taken_at": lease.taken_at.isoformat(),
        "heartbeat_at": lease.heartbeat_at.isoformat(),
        "expires_at": lease.expires_at.isoformat(),
        "live": lease.live,
    }
