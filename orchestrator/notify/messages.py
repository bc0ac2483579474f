"""The body of a notification in each webhook format: Slack's incoming-webhook message (text
plus blocks), a Microsoft Teams message carrying an Adaptive Card (what Teams incoming webhooks
and Workflows accept), and a generic JSON document (`patchring.event/v1`).

Pure: an event in, a JSON-ready dict out; the caller masks the event first. Imports the
standard library and `model` only.
"""

from __future__ import annotations

from typing import Any

from orchestrator.model.notification import RolloutEvent, WebhookFormat

EVENT_SCHEMA = "patchring.event/v1"
_TITLES = {
    "started": "Rollout started",
    "ring-passed": "Ring passed",
    "waiting-for-approval": "Waiting for approval",
    "halted": "Rollout halted",
    "rolled-back": "Rollout rolled back",
    "completed": "Rollout completed",
}
_EMOJI = {
    "started": ":rocket:",
    "ring-passed": ":white_check_mark:",
    "waiting-for-approval": ":raised_hand:",
    "halted": ":octagonal_sign:",
    "rolled-back": ":rewind:",
    "completed": ":tada:",
}


def headline(event: RolloutEvent) -> str:
    """`Ring passed: canary (rollout 2026..., commit abc123def456)`."""
    ring = f": {event.ring}" if event.ring else ""
    return f"{_TITLES[event.kind]}{ring} (rollout {event.rollout_id}, commit {event.commit[:12]})"


def facts(event: RolloutEvent) -> list[tuple[str, str]]:
    found = [("Rollout", event.rollout_id), ("Commit", event.commit[:12])]
    found += [("Ring", event.ring)] if event.ring else []
    found += [("Change ticket", event.change_ticket)] if event.change_ticket else []
    found += [("By", event.operator)] if event.operator else []
    return found


def message_body(event: RolloutEvent, kind: WebhookFormat) -> dict[str, Any]:
    if kind == "slack":
        return _slack(event)
    if kind == "teams":
        return _teams(event)
    return {"schema": EVENT_SCHEMA, "title": headline(event), **event.model_dump(mode="json")}


def _slack(event: RolloutEvent) -> dict[str, Any]:
    text = f"{_EMOJI[event.kind]} {headline(event)}"
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts(event)]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "fields": fields},
    ]
    if event.message:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": event.message}]})
    return {"text": text, "blocks": blocks}


def _teams(event: RolloutEvent) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": headline(event)},
        {
            "type": "FactSet",
            "facts": [{"title": name, "value": value} for name, value in facts(event)],
        },
    ]
    if event.message:
        body.append({"type": "TextBlock", "wrap": True, "text": event.message})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }
