"""The policy commands: validate, explain, schema, plan, apply. Each body delegates to the core."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import add_parallel_flag, load, parallel_for, select
from orchestrator.errors import EXIT_CHANGES_PRESENT, EXIT_HOSTS_FAILED, EXIT_OK, UserInputError
from orchestrator.words import counted

SCHEMA_FILE = Path(".patchring") / "policy.schema.json"
"""Where `schema --write` puts the schema by default (next to the run history, not committed)."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("validate", parents=[common], help="check every policy and inventory file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_validate)
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="show a host's resolved desired state and where each value came from",
    )
    p.add_argument("host")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_explain)
    p = sub.add_parser("schema", help="print the JSON Schema of policy files (for editors)")
    p.add_argument(
        "--for",
        dest="schema_for",
        choices=("policies", "inventory", "exceptions"),
        default="policies",
        help="which files: policies (default), inventory, or exceptions",
    )
    p.add_argument(
        "--write",
        nargs="?",
        const=SCHEMA_FILE,
        type=Path,
        metavar="PATH",
        help=f"write it to PATH (default: {SCHEMA_FILE}, or <kind>.schema.json beside it), "
        "where a `# yaml-language-server: $schema=...` line in the files points editors",
    )
    p.set_defaults(handler=cmd_schema)
    for name, handler, text in (
        ("plan", cmd_plan, "show what would change, per host and ring"),
        ("apply", cmd_apply, "converge hosts to their desired state"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--ring", help="only hosts of this ring")
        p.add_argument(
            "--host", action="append", metavar="HOST", help="only this host (repeatable)"
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        add_parallel_flag(p)
        p.set_defaults(handler=handler)
    sub.choices["plan"].add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when changes are pending (0 when none), as Terraform does",
    )
    sub.choices["plan"].add_argument(
        "--full",
        action="store_true",
        help="show every host's diff in full (default: diffs that differ only in some lines, "
        "such as a template rendered per host, are shown once with those lines marked)",
    )
    _impact_and_saved_plan_flags(sub.choices["plan"], sub.choices["apply"])


def _impact_and_saved_plan_flags(plan: argparse.ArgumentParser, apply: Any) -> None:
    plan.add_argument(
        "--base",
        metavar="REF",
        help="impact of a change: compare every host's desired state at REF with --head, "
        "without contacting any host",
    )
    plan.add_argument("--head", metavar="REF", help="with --base: the changed ref (default: HEAD)")
    plan.add_argument(
        "--live", action="store_true", help="with --base: also probe the hosts against the head"
    )
    plan.add_argument(
        "--format",
        choices=("text", "markdown"),
        default="text",
        help="with --base: markdown for a pull-request comment (--json for the versioned document)",
    )
    plan.add_argument(
        "--out", type=Path, metavar="FILE", help="save the plan (JSON) for `patchring apply FILE`"
    )
    apply.add_argument(
        "plan_file",
        nargs="?",
        type=Path,
        metavar="PLAN",
        help="a plan saved by `plan --out`: apply exactly it, refusing hosts that drifted",
    )


def cmd_validate(args: argparse.Namespace, output: Output) -> int:
    project = load(args.repo, args.inventory, output, counts_only=True)
    counts = project.resource_counts or {}
    hosts, resources = len(counts), sum(counts.values())
    warnings = project.warnings
    if output.json_mode:
        output.document(
            {
                "ok": True,
                "policies": len(project.policies),
                "hosts": hosts,
                "resources": resources,
                "errors": [],
                "warnings": [
                    {"location": str(w.location), "severity": w.severity, "message": w.message}
                    for w in warnings
                ],
            }
        )
        return EXIT_OK
    for warning in warnings:
        output.error(str(warning))
    noted = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
    output.text(
        f"OK: {counted(len(project.policies), 'policy')}, {counted(hosts, 'host')}, "
        f"{counted(resources, 'resource')} resolved, no errors{noted}\n"
    )
    return EXIT_OK


def cmd_explain(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.policy import explain_host
    from orchestrator.report.explain import explain_document, render_explain_text

    project = load(args.repo, args.inventory, output, hosts=lambda _: (args.host,))
    output.show(explain_host(project, args.host), render_explain_text, explain_document)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.policy.schema import SCHEMAS

    schema = SCHEMAS[args.schema_for]()
    if args.write is None:
        output.document(schema)
        return EXIT_OK
    from orchestrator.store.atomic import write_atomic

    text = json.dumps(schema, indent=2) + "\n"
    path: Path = args.write
    if path == SCHEMA_FILE and args.schema_for != "policies":
        path = SCHEMA_FILE.with_name(f"{args.schema_for}.schema.json")
    current = path.read_text() if path.is_file() else None
    if current != text:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text.encode())
        except OSError as error:
            raise UserInputError(f"cannot write {path}: {error.strerror or error}") from error
    output.note(f"{'unchanged' if current == text else 'wrote'} {path}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.engine import plan_hosts
    from orchestrator.report.plan import plan_document, render_plan_text

    if args.base or args.head or args.live:
        from orchestrator.cli.impact import cmd_impact

        if not args.base:
            raise UserInputError("--head and --live go with --base REF")
        return cmd_impact(args, output)
    selection = select(args.repo, args.inventory, args.ring, args.host, output)
    with output.progress("Reading hosts", len(selection.fleet)) as progress:
        plans = plan_hosts(selection.fleet, progress, parallel_for(args, selection.project))
    if args.out:
        from orchestrator.cli.planfile import write_saved_plan

        write_saved_plan(args.out, args.repo, args.inventory, selection, plans, output)
    source = _source(args)
    output.show(
        plans,
        lambda shown: render_plan_text(shown, selection.rings, args.full),
        lambda shown: plan_document(shown, selection.rings, source),
    )
    if any(p.status in {"unreachable", "failed"} for p in plans.values()):
        return EXIT_HOSTS_FAILED
    if args.detailed_exitcode and any(p.changes for p in plans.values()):
        return EXIT_CHANGES_PRESENT
    return EXIT_OK


def cmd_apply(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.cli.runs import Recorder
    from orchestrator.engine import apply_hosts
    from orchestrator.report.plan import apply_document, render_apply_text

    if args.plan_file is not None:
        from orchestrator.cli.planfile import cmd_apply_plan

        return cmd_apply_plan(args, output)
    recorder = Recorder.start(args.repo, "apply", output, ring=args.ring, host=args.host)
    selection = select(args.repo, args.inventory, args.ring, args.host, output)
    with output.progress("Applying", len(selection.fleet) * 2) as progress:
        parallel = parallel_for(args, selection.project)
        results = apply_hosts(selection.fleet, progress, parallel=parallel)
    failed = any(r.status in {"failed", "unreachable"} for r in results.values())
    record, _ = recorder.finish(
        selection, "failed" if failed else "succeeded", apply=list(results.values())
    )
    from orchestrator.gitops import source_summary

    source = source_summary(record.source)  # read once, by the record
    output.show(
        results,
        lambda shown: render_apply_text(shown) + f"\nRun {record.id} recorded.\n",
        lambda shown: apply_document(shown, selection.rings, source),
    )
    return EXIT_HOSTS_FAILED if failed else EXIT_OK


def _source(args: argparse.Namespace) -> dict[str, Any]:
    from orchestrator.gitops import describe_source

    return describe_source(args.repo)
