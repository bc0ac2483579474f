"""`patchring explain HOST`: the resolved desired state with the origin of every value."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from orchestrator.policy.explain import Explanation

EXPLAIN_SCHEMA = "patchring.explain/v1"


def explain_document(explanation: Explanation) -> dict[str, Any]:
    return {"schema": EXPLAIN_SCHEMA, **explanation.model_dump(mode="json")}


def render_explain_text(explanation: Explanation) -> str:
    out = [f"Host {explanation.host}: policies {', '.join(explanation.policies) or '(none)'}", ""]
    width = max((len(r.field) for r in explanation.resources), default=10)
    for resource, rows in groupby(explanation.resources, key=lambda r: r.resource):
        out.append(resource)
        for row in rows:
            origin = "(default)" if row.default else str(row.location)
            out.append(f"  {row.field:<{width}}  {row.value:<40}  {origin}")
    if explanation.vars:
        out += ["", "Variables"]
        vwidth = max(len(v.name) for v in explanation.vars)
        out += [f"  {v.name:<{vwidth}}  {v.value:<40}  {v.location}" for v in explanation.vars]
    if explanation.exceptions:
        out += ["", "Exceptions in force"]
        out += [
            f"  {x.kind:<6}  {x.what:<40}  {x.note}  {x.location or ''}".rstrip()
            for x in explanation.exceptions
        ]
    return "\n".join(out) + "\n"
