"""The impact of a change between two refs (`plan --base`), as text, versioned JSON and Markdown.

JSON schema `patchring.impact/v1`, documented in README: additions keep the version; renames
or removals bump it. The Markdown is written for a pull-request comment: the summary first,
the details folded in `<details>`, and the whole kept under `MARKDOWN_LIMIT` characters (diffs
are cut first). Pure builders and renderers; nothing here reads files or contacts a host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.drift.impact import Advisory, ExceptionChange, HostImpact
from orchestrator.report.grouping import (
    ChangeGroup,
    ShapeGroup,
    describe_values,
    group_changes,
    group_shapes,
    host_list,
)
from orchestrator.report.plan import _change_lines  # one layout for a change, plan or impact
from orchestrator.words import counted, plural

IMPACT_SCHEMA = "patchring.impact/v1"
# GitHub refuses comments over 65,536 characters; GitLab notes allow more. Stay well under.
MARKDOWN_LIMIT = 60_000
MARKDOWN_DIFF_LINES = 40
REBOOT_NOTE = (
    "not assessed: the policies and the patch lock do not say which versions need a reboot; "
    "`patchring assess` reports hosts that need one after patching"
)


def impact_document(
    impacts: Mapping[str, HostImpact],
    rings: Sequence[str],
    base: Mapping[str, Any],
    head: Mapping[str, Any],
    live: Mapping[str, Any] | None = None,
    exceptions: Sequence[ExceptionChange] = (),
) -> dict[str, Any]:
    touched = [i for i in impacts.values() if i.status != "unchanged"]
    groups = group_changes((i.host, i.changes) for i in impacts.values())
    fixed, reopened = _advisory_rows(impacts, "fixed"), _advisory_rows(impacts, "reopened")
    return {
        "schema": IMPACT_SCHEMA,
        "base": dict(base),
        "head": dict(head),
        "summary": {
            "hosts": len(impacts),
            "hosts_changed": len(touched),
            **{s: sum(i.status == s for i in impacts.values()) for s in ("added", "removed")},
            "changes": sum(len(i.changes) for i in impacts.values()),
            "rings_changed": _rings_changed(impacts, rings),
            "advisories_fixed": len(fixed),
            "advisories_reopened": len(reopened),
            "exceptions_changed": len(exceptions),
        },
        "rings": _ring_rows(impacts, rings),
        "hosts": [_host_row(i) for i in impacts.values()],
        "changes": [_group_row(g) for g in groups],
        "advisories": {"fixed": fixed, "reopened": reopened},
        "exceptions": [e.model_dump(mode="json") for e in exceptions],
        "reboot": {"assessed": False, "note": REBOOT_NOTE},
        **({"live": dict(live)} if live is not None else {}),
    }


def has_changes(
    impacts: Mapping[str, HostImpact], exceptions: Sequence[ExceptionChange] = ()
) -> bool:
    return bool(exceptions) or any(i.status != "unchanged" for i in impacts.values())


def exception_words(change: ExceptionChange) -> str:
    """`+ hold-agent (hold: acme-agent held at 1.0-1) until 2027-01-31, owner dana, on 1 host:
    web-02`; an extension says from when to when."""
    mark = {"added": "+", "removed": "-"}.get(change.change, "~")
    until = (
        f"expiry {change.was_expires} -> {change.expires}"
        if change.change in {"extended", "shortened"}
        else f"until {change.expires}"
    )
    hosts = (
        f"on {counted(len(change.hosts), 'host')}: {host_list(change.hosts)}"
        if change.hosts
        else "on no host today"
    )
    word = "" if change.change in {"added", "removed"} else f" {change.change}:"
    return (
        f"{mark} {change.id}{word} ({change.kind}: {change.what}) {until}, "
        f"owner {change.owner}, {hosts}"
    )


def _ring_names(impacts: Mapping[str, HostImpact], rings: Sequence[str]) -> list[str]:
    seen = {i.ring or i.base_ring or "(no ring)" for i in impacts.values()}
    return [r for r in rings if r in seen] + sorted(seen - set(rings))


def _rings_changed(impacts: Mapping[str, HostImpact], rings: Sequence[str]) -> list[str]:
    touched = set()
    for i in impacts.values():
        if i.status != "unchanged":
            touched |= {i.ring or "(no ring)"} | ({i.base_ring} if i.base_ring else set())
    return [r for r in _ring_names(impacts, rings) if r in touched]


def _ring_rows(impacts: Mapping[str, HostImpact], rings: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for ring in _ring_names(impacts, rings):
        members = [i for i in impacts.values() if (i.ring or i.base_ring or "(no ring)") == ring]
        changed = [i.host for i in members if i.status != "unchanged"]
        rows.append({"ring": ring, "hosts": len(members), "changed": len(changed)})
    return rows


def _host_row(impact: HostImpact) -> dict[str, Any]:
    return {
        "host": impact.host,
        "ring": impact.ring,
        "base_ring": impact.base_ring,
        "status": impact.status,
        "changes": [c.model_dump(mode="json") for c in impact.changes],
        "fixed": [a.model_dump(mode="json") for a in impact.fixed],
        "reopened": [a.model_dump(mode="json") for a in impact.reopened],
    }


def _group_row(group: ChangeGroup) -> dict[str, Any]:
    return {**group.change.model_dump(mode="json"), "hosts": list(group.hosts)}


def _advisory_rows(impacts: Mapping[str, HostImpact], which: str) -> list[dict[str, Any]]:
    hosts: dict[Advisory, list[str]] = {}
    for impact in impacts.values():
        for advisory in getattr(impact, which):
            hosts.setdefault(advisory, []).append(impact.host)
    return [{**a.model_dump(mode="json"), "hosts": h} for a, h in hosts.items()]


def _ref_words(ref: Mapping[str, Any]) -> str:
    return f"{ref['ref']} ({str(ref['commit'])[:12]})"


def render_impact_text(
    impacts: Mapping[str, HostImpact],
    rings: Sequence[str],
    base: Mapping[str, Any],
    head: Mapping[str, Any],
    full: bool = False,
    exceptions: Sequence[ExceptionChange] = (),
) -> str:
    doc = impact_document(impacts, rings, base, head, exceptions=exceptions)
    s = doc["summary"]
    out = [
        f"Impact of {_ref_words(base)} -> {_ref_words(head)}: {s['hosts_changed']} of "
        f"{counted(s['hosts'], 'host')} change ({s['added']} added, {s['removed']} removed), "
        f"{counted(s['changes'], 'resource change')}; no host was contacted",
        "",
    ]
    for row in doc["rings"]:
        out.append(
            f"  ring {row['ring']:<10} {row['hosts']:>3} {plural(row['hosts'], 'host'):<5}"
            f"  {row['changed']:>3} changing"
        )
    moved = [i for i in impacts.values() if i.status in {"added", "removed"} or i.ring_moved]
    if moved:
        out += ["", "Hosts:"]
        out += [f"  {_host_words(i)}" for i in moved]
    groups = group_changes((i.host, i.changes) for i in impacts.values())
    if groups:
        out += ["", "Changes (identical changes on several hosts are shown once):"]
    for group in groups if full else group_shapes(groups):
        out += _change_lines(group)
    for title, rows in (
        ("Advisories fixed", doc["advisories"]["fixed"]),
        ("Advisories re-opened", doc["advisories"]["reopened"]),
    ):
        if rows:
            out += ["", f"{title}:"]
            out += [f"  {_advisory_words(row)}" for row in rows]
    if exceptions:
        out += ["", "Exceptions:"]
        out += [f"  {exception_words(change)}" for change in exceptions]
    if not has_changes(impacts, exceptions):
        out += ["", "No changes: every host's desired state is the same at both refs."]
    out += ["", f"Reboots: {REBOOT_NOTE}."]
    return "\n".join(out) + "\n"


def _host_words(impact: HostImpact) -> str:
    if impact.status == "added":
        return f"+ {impact.host}: new at head (ring {impact.ring or '-'})"
    if impact.status == "removed":
        return f"- {impact.host}: gone at head (was ring {impact.base_ring or '-'})"
    return f"~ {impact.host}: ring {impact.base_ring or '-'} -> {impact.ring or '-'}"


def _advisory_words(row: Mapping[str, Any]) -> str:
    cves = f" ({', '.join(row['cves'])})" if row["cves"] else ""
    hosts = tuple(row["hosts"])
    return (
        f"{row['advisory']}{cves}: {row['package']} >= {row['fixed']} on "
        f"{counted(len(hosts), 'host')}: {host_list(hosts)}"
    )


def render_impact_markdown(
    impacts: Mapping[str, HostImpact],
    rings: Sequence[str],
    base: Mapping[str, Any],
    head: Mapping[str, Any],
    exceptions: Sequence[ExceptionChange] = (),
) -> str:
    doc = impact_document(impacts, rings, base, head, exceptions=exceptions)
    s = doc["summary"]
    head_line = (
        f"### patchring: {s['hosts_changed']} of {counted(s['hosts'], 'host')} change\n\n"
        f"`{base['ref']}` ({str(base['commit'])[:12]}) → `{head['ref']}` "
        f"({str(head['commit'])[:12]}): {counted(s['changes'], 'resource change')}"
        + (f" in rings {', '.join(s['rings_changed'])}" if s["rings_changed"] else "")
        + f"; {s['added']} hosts added, {s['removed']} removed; "
        f"{s['advisories_fixed']} advisories fixed, {s['advisories_reopened']} re-opened"
        + (f"; {counted(len(exceptions), 'exception')} changed" if exceptions else "")
        + ".\n"
    )
    table = ["", "| ring | hosts | changing |", "|---|---:|---:|"]
    table += [f"| {r['ring']} | {r['hosts']} | {r['changed']} |" for r in doc["rings"]]
    out = [head_line, *table, ""]
    if not has_changes(impacts, exceptions):
        out.append("No changes: every host's desired state is the same at both refs.\n")
        return "\n".join(out)
    details: list[str] = []
    if exceptions:  # first: what reviewers of an exception must see without unfolding
        out += ["**Exceptions**", ""]
        out += [f"- {_escape(exception_words(change))}" for change in exceptions] + [""]
    shapes = group_shapes(group_changes((i.host, i.changes) for i in impacts.values()))
    for shape in shapes:
        details += _markdown_change(shape)
    for title, rows in (
        ("Advisories fixed", doc["advisories"]["fixed"]),
        ("Advisories re-opened", doc["advisories"]["reopened"]),
    ):
        if rows:
            details += [f"**{title}**", ""] + [f"- {_advisory_words(r)}" for r in rows] + [""]
    details.append(f"Reboots: {REBOOT_NOTE}.")
    body = "\n".join(details)
    room = MARKDOWN_LIMIT - len("\n".join(out)) - 200
    if len(body) > room:
        body = body[:room].rsplit("\n", 1)[0] + "\n\n… cut to fit a comment: see `--json`.\n"
        if body.count("```") % 2:  # do not leave a fence open
            body += "```\n"
    summary = f"{counted(len(shapes), 'change')} (identical ones shown once)"
    out += ["<details>", f"<summary>{summary}</summary>", "", body, "", "</details>", ""]
    return "\n".join(out)


def _markdown_change(shape: ShapeGroup) -> list[str]:
    c = shape.change
    lines = [
        f"- `{c.resource_id}` [{', '.join(c.actions)}] on "
        f"{counted(len(shape.hosts), 'host')} ({host_list(shape.hosts)}): {_escape(c.summary)}"
    ]
    if shape.variants > 1:
        lines.append(f"  ({shape.variants} variants; the diff of {shape.hosts[0]})")
    if c.diff:
        diff = c.diff.rstrip("\n").splitlines()
        shown = diff[:MARKDOWN_DIFF_LINES]
        if len(diff) > len(shown):
            shown.append(f"... {len(diff) - len(shown)} more lines")
        lines += ["", "  ```diff", *[f"  {line}" for line in shown], "  ```"]
    for line in shape.varying:
        lines.append(f"  - varies: `{_escape(line.prefix)}…` {_escape(describe_values(line))}")
    return [*lines, ""]


def _escape(text: str) -> str:
    return text.replace("<", "&lt;")  # no HTML from policy text in a comment
