"""Rollout events and the record of each notification sent about one.

A `RolloutEvent` is what the conductor reports as a rollout moves (started, a ring passed,
waiting for approval, halted, rolled back, completed); `NotificationDelivery` is how sending
one event to one webhook went, kept in the run record. Webhooks themselves are configured in
the inventory (`model.inventory.Webhook`). Imports pydantic, the standard library and
`model.base` only.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from orchestrator.model.base import Frozen

RolloutEventKind = Literal[
    "started", "ring-passed", "waiting-for-approval", "halted", "rolled-back", "completed"
]
ROLLOUT_EVENT_KINDS: tuple[RolloutEventKind, ...] = get_args(RolloutEventKind)
WebhookFormat = Literal["slack", "teams", "json"]


class RolloutEvent(Frozen):
    kind: RolloutEventKind
    rollout_id: str
    commit: str
    ring: str | None = None
    message: str = ""
    change_ticket: str | None = None
    operator: str = ""


class NotificationDelivery(Frozen):
    """One event sent to one webhook. `source` says where its URL is read (`env:NAME` or
    `file:PATH`); the URL itself is a secret and is never recorded."""

    webhook: str
    format: WebhookFormat
    source: str
    event: RolloutEventKind
    ring: str | None = None
    status: Literal["delivered", "failed"]
    attempts: int = Field(ge=0)
    error: str | None = None
