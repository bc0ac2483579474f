"""Plans and apply results as text (for people) and as versioned JSON (for CI).

JSON schema `patchring.plan/v1` and `patchring.apply/v1`, documented in README: additions keep the
version; renames or removals bump it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.model.results import HostPlan, HostResult
from orchestrator.report.grouping import (
    ChangeGroup,
    ShapeGroup,
    describe_values,
    group_changes,
    group_shapes,
    host_list,
)
from orchestrator.words import counted, plural

PLAN_SCHEMA = "patchring.plan/v1"
APPLY_SCHEMA = "patchring.apply/v1"


def plan_document(
    plans: Mapping[str, HostPlan], rings: Sequence[str], source: Mapping[str, Any]
) -> dict[str, Any]:
    counts = Counter(p.status for p in plans.values())
    return {
        "schema": PLAN_SCHEMA,
        "source": dict(source),
        "summary": {
            "hosts": len(plans),
            "in_sync": counts["in-sync"],
            "drifted": counts["drifted"],
            "unreachable": counts["unreachable"],
            "failed": counts["failed"],
            "changes": sum(len(p.changes) for p in plans.values()),
        },
        "rings": _ring_rows(plans, rings),
        "hosts": [p.model_dump(mode="json") for p in plans.values()],
    }


def apply_document(
    results: Mapping[str, HostResult], rings: Sequence[str], source: Mapping[str, Any]
) -> dict[str, Any]:
    counts = Counter(r.status for r in results.values())
    return {
        "schema": APPLY_SCHEMA,
        "source": dict(source),
        "summary": {
            "hosts": len(results),
            **{s: counts[s] for s in ("unchanged", "changed", "failed", "unreachable")},
        },
        "hosts": [r.model_dump(mode="json") for r in results.values()],
    }


def _ring_rows(plans: Mapping[str, HostPlan], rings: Sequence[str]) -> list[dict[str, Any]]:
    names = list(rings) + sorted({p.ring or "(no ring)" for p in plans.values()} - set(rings))
    rows = []
    for ring in names:
        members = [p for p in plans.values() if (p.ring or "(no ring)") == ring]
        if members:
            counts = Counter(p.status for p in members)
            rows.append(
                {
                    "ring": ring,
                    "hosts": len(members),
                    **{
                        k.replace("-", "_"): counts[k]
                        for k in ("in-sync", "drifted", "unreachable", "failed")
                    },
                }
            )
    return rows


def render_plan_text(
    plans: Mapping[str, HostPlan], rings: Sequence[str], full: bool = False
) -> str:
    """The plan for people; with `full`, every distinct diff in full (else diffs of one
    resource that differ only in some lines are shown once, those lines marked `*`)."""
    doc = plan_document(plans, rings, {})
    s = doc["summary"]
    out = [
        f"Plan: {counted(s['hosts'], 'host')}: {s['drifted']} to change, {s['in_sync']} in sync, "
        f"{s['unreachable']} unreachable, {s['failed']} failed"
    ]
    out.append("")
    for row in doc["rings"]:
        out.append(
            f"  ring {row['ring']:<10} {row['hosts']:>3} {plural(row['hosts'], 'host'):<5}"
            f"  {row['drifted']:>3} to change"
            f"  {row['in_sync']:>3} in sync  {row['unreachable'] + row['failed']:>3} not read"
        )
    groups = group_changes((p.host, p.changes) for p in plans.values())
    if groups:
        out += ["", "Changes (identical changes on several hosts are shown once):"]
    for group in groups if full else group_shapes(groups):
        out += _change_lines(group)
    problems: dict[str, list[str]] = {}
    for p in plans.values():
        if p.status in {"unreachable", "failed"}:
            problems.setdefault(p.error or p.status, []).append(p.host)
    if problems:
        out += ["", "Hosts that failed or could not be read (nothing was changed on them):"]
        out += [f"  ! {host_list(tuple(h))}: {why}" for why, h in problems.items()]
    if not groups and not problems:
        out += ["", "No changes. Every host is in its desired state."]
    return "\n".join(out) + "\n"


def _change_lines(group: ChangeGroup | ShapeGroup) -> list[str]:
    c = group.change
    variants = group.variants if isinstance(group, ShapeGroup) else 1
    varying = {v.index: v for v in group.varying} if isinstance(group, ShapeGroup) else {}
    head = f"  ~ {c.resource_id}  [{', '.join(c.actions)}]  on {counted(len(group.hosts), 'host')}"
    lines = [f"{head}: {host_list(group.hosts)}", f"      {c.summary}"]
    if variants > 1:
        lines.append(
            f"      {variants} variants; the diff of {group.hosts[0]}, lines marked * differ "
            "(`plan --full` shows each)"
        )
    for index, line in enumerate(c.diff.rstrip("\n").splitlines() if c.diff else []):
        lines.append(f"    {'*' if index in varying else ' '} {line}")
    if varying:
        lines.append("      what differs:")
        lines += [f"      * {v.prefix}…  {describe_values(v)}" for v in varying.values()]
    return lines


def render_apply_text(results: Mapping[str, HostResult]) -> str:
    counts = Counter(r.status for r in results.values())
    out = [
        f"Apply: {counted(len(results), 'host')}: {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged, {counts['failed']} failed, "
        f"{counts['unreachable']} unreachable",
        "",
    ]
    for r in results.values():
        mark = {"changed": "~", "unchanged": "=", "failed": "!", "unreachable": "!"}[r.status]
        out.append(
            f"  {mark} {r.host:<12} {r.status:<12} ring {r.ring or '-':<8} "
            f"{len(r.outcomes)} resources  {r.remote_commands} remote commands"
        )
        for o in r.outcomes:
            out.append(f"      {o.status:<14} {o.resource_id}: {o.summary}")
            if o.error:
                out += [f"          {line}" for line in o.error.splitlines()]
        if r.error and not r.outcomes:
            out += [f"      {line}" for line in r.error.splitlines()]
    return "\n".join(out) + "\n"
