"""Saved plans: `plan --out FILE` writes one; `apply FILE` and `rollout --plan FILE` apply it.

A plan file is plain JSON (schema `patchring.saved-plan/v1`), masked like every output and
validated with pydantic when read, never executed. Applying refuses (exit 1, nothing changed)
when the commit or the input files differ from the plan's; it probes every host again and
refuses each host whose desired or observed state is not the plan's, naming what drifted,
while the other hosts proceed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from orchestrator import __version__
from orchestrator.cli.console import Output
from orchestrator.cli.project import Selection, parallel_for
from orchestrator.errors import UserInputError
from orchestrator.model.desired import DesiredState
from orchestrator.model.results import HostPlan, HostResult
from orchestrator.model.savedplan import PlannedHost, PlanSource, SavedPlan
from orchestrator.words import counted

NEW_PLAN_HINT = "make a new plan with `patchring plan --out FILE` and review it"


def write_saved_plan(
    path: Path,
    repo: Path,
    inventory: str,
    chosen: Selection,
    plans: Mapping[str, HostPlan],
    output: Output,
) -> None:
    from orchestrator.drift.saved import desired_digest, for_plan, observed_digest
    from orchestrator.gitops import compute_inputs, git_source

    source = git_source(repo)
    hosts = tuple(
        PlannedHost(
            host=name,
            ring=plan.ring,
            status=plan.status,
            desired_sha256=desired_digest(chosen.fleet[name]),
            observed_sha256=observed_digest(plan.observed) if plan.observed else None,
            observed=for_plan(plan.observed) if plan.observed else None,
            changes=plan.changes,
            error=plan.error,
        )
        for name, plan in plans.items()
    )
    saved = SavedPlan(
        tool_version=__version__,
        created=datetime.now(UTC),
        source=PlanSource(commit=source.commit, dirty=source.dirty),
        inventory=inventory,
        inputs=compute_inputs(repo, chosen.project),
        hosts=hosts,
    )
    text = saved.model_dump_json(indent=2, by_alias=True) + "\n"
    try:
        path.write_text(output.mask(text))
    except OSError as error:
        raise UserInputError(f"{path}: cannot write the plan: {error.strerror}") from None
    if source.dirty:
        output.note("note: the working tree has uncommitted changes; the plan's inputs hash them")
    output.note(f"wrote the plan to {path}; apply exactly it with `patchring apply {path}`")


def read_saved_plan(path: Path) -> SavedPlan:
    """The plan in `path`, validated; a clear error (exit 1) for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: cannot read the plan: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{path}:{error.lineno}:{error.colno}: error: not a saved plan: {error.msg}"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != "patchring.saved-plan/v1":
        found = data.get("schema") if isinstance(data, dict) else None
        raise UserInputError(
            f"{path}: error: not a saved plan (schema {found!r}, expected "
            "'patchring.saved-plan/v1')",
            hint=NEW_PLAN_HINT,
        )
    try:
        return SavedPlan.model_validate(data)
    except PydanticValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise UserInputError(
            f"{path}: error: malformed saved plan at {where}: {first['msg']}"
            + (f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""),
            hint=NEW_PLAN_HINT,
        ) from None


def check_plan_source(
    path: Path, saved: SavedPlan, commit: str | None, inputs: dict[str, str]
) -> None:
    """Refuse (exit 1) a plan made at another commit or from other input files."""
    from orchestrator.drift.saved import input_differences

    if saved.source.commit != commit:
        raise UserInputError(
            f"{path}: the plan was made at commit {_short(saved.source.commit)}, but the "
            f"policies are at {_short(commit)}; nothing was changed",
            hint=NEW_PLAN_HINT,
        )
    changed = input_differences(saved.inputs, inputs)
    if changed:
        raise UserInputError(
            f"{path}: the inputs differ from the plan's ({'; '.join(changed)}); nothing was "
            "changed",
            hint=NEW_PLAN_HINT,
        )


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(no commit)"


def refusals(
    saved: SavedPlan, fleet: Mapping[str, DesiredState], probed: Mapping[str, HostPlan]
) -> dict[str, str]:
    """Host -> why it is refused: not in the plan, not read then, or drifted since."""
    from orchestrator.drift.saved import desired_digest, observed_differences, observed_digest

    planned = {h.host: h for h in saved.hosts}
    why: dict[str, str] = {}
    for name, desired in fleet.items():
        host = planned.get(name)
        now = probed.get(name)
        if host is None:
            why[name] = "not in the plan"
        elif host.desired_sha256 != desired_digest(desired):
            why[name] = "its desired state differs from the plan's (a variable from the "
            why[name] += "environment or a secret file changed?)"
        elif host.observed is None or host.observed_sha256 is None:
            why[name] = f"it was not read when the plan was made ({host.error or host.status})"
        elif now is None or now.observed is None:
            why[name] = f"it cannot be read now: {now.error if now else 'not probed'}"
        elif observed_digest(now.observed) != host.observed_sha256:
            changed = observed_differences(host.observed, now.observed) or ["its state"]
            why[name] = "drifted since the plan: " + "; ".join(changed)
    return why


def refused_result(name: str, ring: str | None, reason: str) -> HostResult:
    return HostResult(host=name, ring=ring, status="failed", error=f"refused: {reason}")


def cmd_apply_plan(args: Any, output: Output) -> int:
    from orchestrator.cli.project import select
    from orchestrator.cli.runs import Recorder
    from orchestrator.engine import apply_hosts, plan_hosts
    from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK
    from orchestrator.gitops import compute_inputs, git_source, source_summary
    from orchestrator.report.plan import apply_document, render_apply_text

    if args.ring or args.host:
        raise UserInputError(
            "a saved plan applies to the hosts it was made for: drop --ring/--host"
        )
    saved = read_saved_plan(args.plan_file)
    names = [h.host for h in saved.hosts]
    recorder = Recorder.start(args.repo, "apply", output, plan=str(args.plan_file), host=names)
    chosen = select(args.repo, saved.inventory, None, names, output)
    check_plan_source(
        args.plan_file,
        saved,
        git_source(args.repo).commit,
        compute_inputs(args.repo, chosen.project),
    )
    with output.progress("Reading hosts", len(chosen.fleet)) as progress:
        probed = plan_hosts(chosen.fleet, progress, parallel_for(args, chosen.project))
    refused = refusals(saved, chosen.fleet, probed)
    for name, reason in refused.items():
        output.error(f"patchring: {name}: refused: {reason}")
    todo = {n: d for n, d in chosen.fleet.items() if n not in refused}
    with output.progress("Applying", len(todo) * 2) as progress:
        parallel = parallel_for(args, chosen.project)
        applied = apply_hosts(todo, progress, parallel=parallel) if todo else {}
    results = {
        n: applied.get(n) or refused_result(n, chosen.fleet[n].host.ring, refused[n])
        for n in chosen.fleet
    }
    failed = any(r.status in {"failed", "unreachable"} for r in results.values())
    record, _ = recorder.finish(
        chosen, "failed" if failed else "succeeded", apply=list(results.values())
    )
    source = source_summary(record.source)
    output.show(
        results,
        lambda shown: (
            render_apply_text(shown)
            + f"\nApplied the saved plan {args.plan_file} ({counted(len(todo), 'host')}, "
            f"{len(refused)} refused). Run {record.id} recorded.\n"
        ),
        lambda shown: apply_document(shown, chosen.rings, source),
    )
    return EXIT_HOSTS_FAILED if failed else EXIT_OK


def rollout_screen(args: Any, output: Output) -> tuple[str, Callable[..., dict[str, HostResult]]]:
    """`rollout --plan FILE`: the plan's commit (checked with its inputs), and the screen the
    conductor runs before each batch: it probes the batch and refuses hosts that drifted."""
    from orchestrator.engine import plan_hosts
    from orchestrator.gitops import compute_inputs
    from orchestrator.gitops.commits import CommitSource, resolve_ref
    from orchestrator.policy import load_project

    saved = read_saved_plan(args.plan)
    commit = saved.source.commit
    if commit is None or saved.source.dirty:
        raise UserInputError(
            f"{args.plan}: the plan was made from uncommitted changes; a rollout applies a "
            "commit, so plan a committed tree",
            hint=NEW_PLAN_HINT,
        )
    if args.ref is not None and resolve_ref(args.repo, args.ref) != commit:
        raise UserInputError(
            f"{args.plan}: the plan was made at commit {commit[:12]}, not at --ref {args.ref}; "
            "nothing was changed",
            hint=NEW_PLAN_HINT,
        )
    if args.inventory != saved.inventory:
        raise UserInputError(
            f"{args.plan}: the plan was made with --inventory {saved.inventory}, not "
            f"{args.inventory}"
        )
    with CommitSource(args.repo, commit) as source:
        project = load_project(source, saved.inventory)
    output.protect(project.secrets)
    check_plan_source(args.plan, saved, commit, compute_inputs(args.repo, project, at=commit))

    def screen(fleet: dict[str, DesiredState]) -> dict[str, HostResult]:
        refused = refusals(saved, fleet, plan_hosts(fleet))
        for name, reason in refused.items():
            output.error(f"patchring: {name}: refused: {reason}")
        return {n: refused_result(n, fleet[n].host.ring, r) for n, r in refused.items()}

    return commit, screen
