"""Plan and apply over a fleet: probe every host once, compare, and hand pyinfra only what differs.

A host in sync costs one remote command (the probe). Changes run as pyinfra operations, each
host's operations on their own (a hung host holds up no other), every step under a deadline and
a watchdog (`session.run_step`); afterwards each changed host is probed again, so a result says
what is true on the host, not what an operation hoped for. A host's result is handed to
`on_result` as soon as it is known, while other hosts may still be running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import gevent
from paramiko import SSHException
from pyinfra import context
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.api.operations import run_host_op
from pyinfra.api.state import State

from orchestrator.compiler import OpSpec, compile_host
from orchestrator.drift.availability import unoffered_error, unoffered_versions
from orchestrator.drift.changes import ResourceChange, diff_host
from orchestrator.drift.edits import edit_problems
from orchestrator.drift.expected import RESTART_ID_PREFIX, pending_restart_marker
from orchestrator.drift.observed import Observation
from orchestrator.drift.probe import ProbeOutputError, build_probe_script, parse_probe_output
from orchestrator.engine.facts import effect_of, install_fact_cache, predicted_facts
from orchestrator.engine.operations import add_spec
from orchestrator.engine.session import (
    FleetSession,
    HostLink,
    ProgressFn,
    StepStopped,
    open_session,
    run_step,
)
from orchestrator.errors import EngineError
from orchestrator.fanout import in_windows
from orchestrator.model.desired import DesiredState, HostTarget
from orchestrator.model.inventory import DEFAULT_PARALLEL
from orchestrator.model.results import (
    HostApplyStatus,
    HostPlan,
    HostPlanStatus,
    HostResult,
    ResourceApplyStatus,
    ResourceOutcome,
)

PROBE_TIMEOUT = 60.0


def plan_hosts(
    fleet: Mapping[str, DesiredState],
    progress: ProgressFn | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, HostPlan]:
    """What converging each host would change, from one probe per host; at most `parallel`
    hosts connected at once (see `orchestrator.fanout`)."""
    return in_windows(fleet, parallel, partial(_plan_window, progress=progress))


def _plan_window(
    fleet: Mapping[str, DesiredState], progress: ProgressFn | None
) -> dict[str, HostPlan]:
    with open_session([d.host for d in fleet.values()], progress) as session:
        plans = _probe_all(session, fleet, progress)
        return _settle_deploys(session, fleet, plans)


ResultFn = Callable[[HostResult], None]


@dataclass(frozen=True)
class Stopped:
    """The step that ended a host's run early: which operation, and the reason in words."""

    op_hash: str
    message: str
    host_silent: bool


def apply_hosts(
    fleet: Mapping[str, DesiredState],
    progress: ProgressFn | None = None,
    on_result: ResultFn | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, HostResult]:
    """Converge every host; the others carry on when one fails or hangs. `on_result` gets
    each host's result as soon as that host is done. At most `parallel` hosts are connected
    at once (see `orchestrator.fanout`)."""
    return in_windows(
        fleet, parallel, partial(_apply_window, progress=progress, on_result=on_result)
    )


def _apply_window(
    fleet: Mapping[str, DesiredState], progress: ProgressFn | None, on_result: ResultFn | None
) -> dict[str, HostResult]:
    started = time.monotonic()
    results: dict[str, HostResult] = {}

    def finish(result: HostResult) -> None:
        results[result.host] = result
        if on_result:
            on_result(result)

    with open_session([d.host for d in fleet.values()], progress) as session:
        plans = _probe_all(session, fleet, progress)
        work = {name: plan for name, plan in plans.items() if plan.status == "drifted"}
        for name, plan in plans.items():
            if name not in work:
                finish(_host_result(session.links[name], plan, [], None, None, None, started))
        # Our probe already knows what changes: pyinfra need not run every operation once
        # more to find out while it is added. Each runs once, when executed, so preparing
        # is cheap and the work overlaps other hosts' remote commands.
        session.state.check_for_changes = False
        added, failures = _add_operations(session, fleet, work)
        for name, failure in failures.items():
            link = session.links[name]
            finish(_host_result(link, plans[name], added[name], None, failure, None, started))

        crashes: list[Exception] = []

        def converge(name: str) -> None:
            link = session.links[name]
            try:
                stopped = _execute_host(session.state, link, added[name])
                after = None
                if stopped is None or not stopped.host_silent:
                    after = _probe(session, link, fleet[name])
                if progress:
                    progress(name, "applied")
                finish(_host_result(link, plans[name], added[name], after, None, stopped, started))
            except Exception as error:  # a bug, or on_result failing: raised below, not printed
                crashes.append(error)

        # As pyinfra's run_ops does: a deploy's nested operations now run when they are added.
        session.state.is_executing = True
        with context.ctx_state.use(session.state):
            gevent.joinall([gevent.spawn(converge, n) for n in work if n not in failures])
        if crashes:
            raise crashes[0]
        return {name: results[name] for name in fleet}


def _probe_all(
    session: FleetSession, fleet: Mapping[str, DesiredState], progress: ProgressFn | None
) -> dict[str, HostPlan]:
    plans: dict[str, HostPlan] = {}
    greenlets = {}
    for name in fleet:
        link = session.links[name]
        if link.error is not None:
            plans[name] = _plan(link, "unreachable", error=link.error)
        else:
            greenlets[gevent.spawn(_probe, session, link, fleet[name])] = name
    for greenlet in gevent.iwait(list(greenlets)):
        name = greenlets[greenlet]
        link = session.links[name]
        plans[name] = (
            greenlet.value
            if greenlet.successful()
            else _plan(link, "failed", error=f"probe failed: {greenlet.exception}")
        )
        if progress:
            progress(name, plans[name].status)
    return {name: plans[name] for name in fleet}


def _plan(
    link: HostLink,
    status: HostPlanStatus,
    changes: tuple[ResourceChange, ...] = (),
    error: str | None = None,
    observed: Observation | None = None,
) -> HostPlan:
    return HostPlan(
        host=link.target.name,
        ring=link.target.ring,
        status=status,
        changes=changes,
        error=error,
        remote_commands=link.commands,
        observed=observed,
    )


def _probe(session: FleetSession, link: HostLink, desired: DesiredState) -> HostPlan:
    timeout = min(link.target.command_timeout, PROBE_TIMEOUT)
    try:
        ok, out, err = session.run(link, build_probe_script(desired), timeout, what="probe")
    except StepStopped as stop:
        return _plan(link, "unreachable" if stop.host_silent else "failed", error=stop.message)
    except TimeoutError as error:
        return _plan(link, "failed", error=f"probe timed out: {error}")
    except (OSError, SSHException, EOFError) as error:
        return _plan(link, "unreachable", error=f"connection lost: {error}")
    if not ok:
        return _plan(link, "failed", error=f"probe failed: {_tail(err or out)}")
    try:
        observed = parse_probe_output(out)
    except ProbeOutputError as error:
        return _plan(link, "failed", error=f"{error}: {_tail(err)}")
    changes = diff_host(desired, observed)
    sources_change = any(c.resource_id.startswith("apt_repository:") for c in changes)
    missing = unoffered_versions(desired, observed, lists_refreshed=sources_change)
    if missing:  # a version to install that apt cannot give: fail here, before any change
        return _plan(link, "failed", changes, error=unoffered_error(missing))
    uneditable = edit_problems(desired, observed)
    if uneditable:  # a file the policy edits in part that cannot take the edit
        return _plan(link, "failed", changes, error="\n".join(uneditable))
    status: HostPlanStatus = "drifted" if changes else "in-sync"
    return _plan(link, status, changes=changes, observed=observed)


Added = dict[str, list[tuple[OpSpec, list[OperationMeta]]]]


def _settle_deploys(
    session: FleetSession, fleet: Mapping[str, DesiredState], plans: dict[str, HostPlan]
) -> dict[str, HostPlan]:
    """A deploy is opaque to the probe: let pyinfra's own facts say whether its operations
    would change anything (a dry run), and keep only the deploys that would."""
    pending = {
        name: plan
        for name, plan in plans.items()
        if any("delegate" in c.actions for c in plan.changes)
    }
    if not pending:
        return plans
    work = {
        name: plan.model_copy(
            update={"changes": tuple(c for c in plan.changes if "delegate" in c.actions)}
        )
        for name, plan in pending.items()
    }
    added, failures = _add_operations(session, fleet, work)
    settled = dict(plans)
    for name, plan in pending.items():
        link = session.links[name]
        if name in failures:
            settled[name] = _plan(link, "failed", plan.changes, failures[name])
            continue
        would: dict[str, list[str]] = {}
        for spec, metas in added[name]:
            steps = [_op_name(session, m) for m in metas if m.will_change]
            if steps:
                would.setdefault(spec.resource_ids[0], []).extend(steps)
        kept = tuple(
            c.model_copy(update={"summary": f"{c.summary}: {'; '.join(would[c.resource_id])}"})
            if c.resource_id in would
            else c
            for c in plan.changes
            if "delegate" not in c.actions or c.resource_id in would
        )
        settled[name] = _plan(link, "drifted" if kept else "in-sync", kept)
    return settled


def _op_name(session: FleetSession, meta: OperationMeta) -> str:
    names = session.state.get_op_meta(meta._hash).names
    return ", ".join(sorted(names)) or "an operation"


def _add_operations(
    session: FleetSession, fleet: Mapping[str, DesiredState], work: Mapping[str, HostPlan]
) -> tuple[Added, dict[str, str]]:
    """Prepare each drifted host's operations, hosts in parallel (facts are remote calls)."""
    added: Added = {}
    failures: dict[str, str] = {}

    def prepare(name: str) -> None:
        link = session.links[name]
        only = {c.resource_id for c in work[name].changes}
        # pyinfra's own timeout (+5) only backs up run_step's deadline, which names the step.
        timeout = link.target.command_timeout

        def add_all() -> None:
            specs = compile_host(fleet[name], only=only, observed=work[name].observed)
            link.facts = link.facts or install_fact_cache(link.host, predicted_facts(specs))
            for spec in specs:
                metas = add_spec(session.state, link.host, spec, timeout + 5)
                if link.facts is not None:
                    link.facts.expect(spec, [m._hash for m in metas])
                added[name].append((spec, metas))

        added[name] = []
        try:
            run_step(link, "preparing operations (reading pyinfra facts)", timeout, add_all)
        except EngineError:
            raise
        except StepStopped as stop:
            failures[name] = stop.message
        except Exception as error:  # pyinfra facts may raise anything a remote host causes
            failures[name] = f"preparing operations failed: {error}"
        if name in failures:
            session.state.active_hosts.discard(link.host)

    context.ctx_state.set(session.state)  # one State for every greenlet: see PITFALLS (globals)
    try:
        greenlets = [gevent.spawn(prepare, name) for name in work]
        gevent.joinall(greenlets, raise_error=True)
    finally:
        context.ctx_state.reset()
    return added, failures


def _execute_host(
    state: State, link: HostLink, ops: list[tuple[OpSpec, list[OperationMeta]]]
) -> Stopped | None:
    """Run one host's operations in order, each as a step of its own (deadline, watchdog);
    stop at the first that fails. Returns the step that hung, if one did."""
    timeout = link.target.command_timeout
    for spec, metas in ops:
        if link.facts is not None:
            link.facts.effect = effect_of(spec)  # which cached facts its commands may change
        for meta in metas:
            what = f'operation "{_step_name(state, spec, meta)}"'
            try:
                ok = run_step(link, what, timeout, partial(_run_op, state, link.host, meta))
            except StepStopped as stop:
                return Stopped(meta._hash, stop.message, stop.host_silent)
            except EngineError:
                raise
            except Exception as error:  # an operation's facts or arguments refused at run time
                return Stopped(meta._hash, f"{what} failed: {error}", host_silent=False)
            if not ok:
                return None
    return None


def _run_op(state: State, host: Host, meta: OperationMeta) -> bool:
    with context.ctx_host.use(host):  # greenlet-local in pyinfra: set in each step's greenlet
        return bool(run_host_op(state, host, meta._hash))


def _step_name(state: State, spec: OpSpec, meta: OperationMeta) -> str:
    if spec.is_deploy:
        return f"{spec.description}: {', '.join(sorted(state.get_op_meta(meta._hash).names))}"
    return f"{spec.operation} {spec.description.removeprefix('file ')}"


def _host_result(
    link: HostLink,
    plan: HostPlan,
    ops: list[tuple[OpSpec, list[OperationMeta]]],
    after: HostPlan | None,
    failure: str | None,
    stopped: Stopped | None,
    started: float,
) -> HostResult:
    def result(
        status: HostApplyStatus,
        outcomes: tuple[ResourceOutcome, ...] = (),
        error: str | None = None,
    ) -> HostResult:
        return HostResult(
            host=link.target.name,
            ring=link.target.ring,
            status=status,
            outcomes=outcomes,
            error=error,
            remote_commands=link.commands,
            seconds=round(time.monotonic() - started, 3),
        )

    if plan.status in {"unreachable", "failed"}:
        return result("unreachable" if plan.status == "unreachable" else "failed", error=plan.error)
    if not plan.changes:
        return result("unchanged")
    failure = failure or (stopped.message if stopped else None)
    ran = _ran(ops)
    op_errors = _op_errors(ops, stopped)
    remaining = {c.resource_id: c for c in (after.changes if after else ())}
    outcomes = tuple(
        o
        for c in plan.changes
        if (o := _outcome(c, op_errors, ran, remaining, failure, after)).status != "unchanged"
    )
    if not outcomes and not failure:
        return result("unchanged")
    lost = after is not None and after.status in {"failed", "unreachable"}
    if failure or lost or any(o.status != "changed" for o in outcomes):
        error = failure or (after.error if after else None) or _first_error(outcomes)
        return result("failed", outcomes, error)
    return result("changed", outcomes)


def _ran(ops: list[tuple[OpSpec, list[OperationMeta]]]) -> dict[str, bool]:
    """resource id -> whether its operations changed something, for resources whose every
    operation ran and succeeded."""
    ran: dict[str, bool] = {}
    failed: set[str] = set()
    for spec, metas in ops:
        for rid in spec.resource_ids:
            if all(m.is_complete() and m.did_succeed() for m in metas):
                ran[rid] = ran.get(rid, False) or any(m.did_change() for m in metas)
            else:
                failed.add(rid)
    return {rid: changed for rid, changed in ran.items() if rid not in failed}


def _op_errors(
    ops: list[tuple[OpSpec, list[OperationMeta]]], stopped: Stopped | None
) -> dict[str, str]:
    """resource id -> error text, for operations that failed, hung or never ran."""
    errors: dict[str, str] = {}
    not_run = (
        "not run: the host stopped at an earlier step"
        if stopped
        else "not run: an earlier operation on this host failed"
    )
    for spec, metas in ops:
        for meta in metas:
            if stopped is not None and meta._hash == stopped.op_hash:
                message = stopped.message
            elif not meta.is_complete():
                message = not_run
            elif not meta.did_succeed():
                message = f"{spec.description} failed:\n{_failure_text(meta)}"
            else:
                continue
            for rid in spec.resource_ids:
                errors.setdefault(rid, message)
    return errors


def _outcome(
    change: ResourceChange,
    op_errors: dict[str, str],
    ran: dict[str, bool],
    remaining: dict[str, ResourceChange],
    failure: str | None,
    after: HostPlan | None,
) -> ResourceOutcome:
    def outcome(status: ResourceApplyStatus, error: str = "") -> ResourceOutcome:
        return ResourceOutcome(
            resource_id=change.resource_id,
            policy=change.policy,
            status=status,
            summary=change.summary,
            diff=change.diff,
            error=error,
        )

    rid = change.resource_id
    if rid in ran and (after is None or "delegate" in change.actions):
        # Ran to the end but not probed again (the host stopped answering later on), or a
        # deploy, which pyinfra's own operations decide: what the operations reported.
        return outcome("changed" if ran[rid] else "unchanged")
    error = op_errors.get(rid) or failure
    if error:
        if rid.startswith(RESTART_ID_PREFIX):
            marker = pending_restart_marker(rid.removeprefix(RESTART_ID_PREFIX))
            error += f"\nthe restart stays pending on the host ({marker}): the next apply runs it"
        return outcome("skipped" if error.startswith("not run") else "failed", error)
    if after is None or rid in remaining:
        still = remaining.get(rid)
        detail = still.summary if still else (after.error if after else None) or "not verified"
        return outcome("still-differs", f"still differs: {detail}")
    return outcome("changed")


def _first_error(outcomes: tuple[ResourceOutcome, ...]) -> str | None:
    return next((o.error for o in outcomes if o.status == "failed"), None) or next(
        (o.error for o in outcomes if o.error), None
    )


_ERROR_LINE = re.compile(r"error|fail|denied|no space|not found|unable|^E:|dpkg:", re.IGNORECASE)
# apt's progress lines, which say nothing about a failure.
_APT_PROGRESS = re.compile(
    r"^(Reading package lists|Building dependency tree|Reading state information)\.\.\."
)
# Lines kept before each error line: apt explains an `E:` in the sentence before it, and a
# maintainer script's own message precedes dpkg's "error processing package".
_ERROR_CONTEXT = 3


def _failure_text(meta: OperationMeta, limit: int = 12) -> str:
    """The lines of an operation's output that say what went wrong (dpkg's message, apt's E:)."""
    output = meta._combined_output  # pyinfra keeps stdout and stderr interleaved only here
    lines = [line.line.rstrip() for line in output.combined_lines] if output else []
    lines = [line for line in lines if line.strip() and not _APT_PROGRESS.match(line)]
    marks = [i for i, line in enumerate(lines) if _ERROR_LINE.search(line)]
    keep = sorted({j for i in marks for j in range(i - _ERROR_CONTEXT, i + 1) if j >= 0})
    chosen = [lines[j] for j in keep][-limit * 2 :] if marks else lines[-limit:]
    return "\n".join(chosen) if chosen else "(no output: the step timed out or the host went away)"


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) if kept else "(no output)"


def run_on_hosts(
    targets: Sequence[HostTarget],
    command: str,
    timeout: float,
    full_output: bool = False,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, tuple[bool, str]]:
    """Run one shell command on every host in parallel (at most `parallel` at once): (exit 0?,
    output or reason) per host; the output's last lines, or with `full_output` its whole stdout
    (for a parser)."""
    window = partial(_run_window, command=command, timeout=timeout, full_output=full_output)
    return in_windows({t.name: t for t in targets}, parallel, window)


def _run_window(
    window: Mapping[str, HostTarget], command: str, timeout: float, full_output: bool
) -> dict[str, tuple[bool, str]]:
    targets = list(window.values())

    def one(session: FleetSession, link: HostLink) -> tuple[bool, str]:
        if link.error is not None:
            return False, link.error
        try:
            ok, out, err = session.run(link, command, timeout)
        except StepStopped as stop:  # health checks read these two prefixes
            return False, (
                f"unreachable: {stop.message}"
                if stop.host_silent
                else f"timed out after {timeout:g} s"
            )
        except TimeoutError as error:
            return False, f"timed out: {error}"
        except (OSError, SSHException, EOFError) as error:
            return False, f"connection lost: {error}"
        return ok, out if full_output and ok else _tail(out + "\n" + err, 6)

    with open_session(targets) as session:
        greenlets = {name: gevent.spawn(one, session, link) for name, link in session.links.items()}
        gevent.joinall(list(greenlets.values()))
        return {
            name: g.value if g.successful() else (False, f"failed: {g.exception}")
            for name, g in greenlets.items()
        }
