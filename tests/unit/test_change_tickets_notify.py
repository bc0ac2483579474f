"""Change tickets (ring rules, refusal before anything is done, every report) and notifications
(message formats, delivery with retries to a local HTTP receiver, masked URLs)."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.inventory import load_inventory
from orchestrator.model.inventory import Webhook
from orchestrator.model.notification import RolloutEvent
from orchestrator.notify.messages import message_body
from orchestrator.notify.webhook import Notifier
from orchestrator.report.html import render_html
from orchestrator.report.junit import render_junit
from orchestrator.report.markdown import render_markdown
from orchestrator.rollout.tickets import ChangeTicketError, check_change_ticket
from tests.unit.test_inventory_loader import problems, repo
from tests.unit.test_report_record import failed_rollout

RINGS = """\
hosts:
  web-1: {address: 10.0.0.1, ring: canary}
  web-2: {address: 10.0.0.2, ring: prod}
rings:
  - name: canary
  - name: prod
    require_change_ticket: true
    change_ticket_pattern: 'CHG\\d+'
"""


def test_a_ring_requiring_a_ticket_refuses_a_rollout_without_one(tmp_path: Path) -> None:
    inventory = load_inventory(repo(tmp_path, {"inventory/fleet.yml": RINGS}))
    with pytest.raises(ChangeTicketError) as refused:
        check_change_ticket(None, inventory.rings)
    assert refused.value.message == (
        "inventory/fleet.yml:6:11: ring 'prod' requires a change ticket; nothing was done"
    )
    assert refused.value.hint is not None and "--change-ticket ID matching CHG\\d+" in (
        refused.value.hint
    )
    assert refused.value.exit_code == 1


def test_a_ticket_must_match_the_rings_pattern_whole(tmp_path: Path) -> None:
    inventory = load_inventory(repo(tmp_path, {"inventory/fleet.yml": RINGS}))
    check_change_ticket("CHG0042", inventory.rings)
    for bad in ("CHG", "XCHG1", "CHG1x", "PROJ-12"):
        with pytest.raises(ChangeTicketError, match="does not match ring 'prod'"):
            check_change_ticket(bad, inventory.rings)
    with pytest.raises(ChangeTicketError, match="whitespace"):
        check_change_ticket("CHG1 ; rm", inventory.rings)


def test_no_rule_no_ticket_needed(tmp_path: Path) -> None:
    plain = RINGS.replace("    require_change_ticket: true\n", "").replace(
        "    change_ticket_pattern: 'CHG\\d+'\n", ""
    )
    inventory = load_inventory(repo(tmp_path, {"inventory/fleet.yml": plain}))
    check_change_ticket(None, inventory.rings)
    check_change_ticket("anything-goes", inventory.rings)


def test_a_bad_pattern_and_a_clear_url_are_located_errors(tmp_path: Path) -> None:
    text = RINGS.replace("'CHG\\d+'", "'CHG(\\d+'") + (
        "notifications:\n  - {name: chat, format: slack, url: 'https://hooks.example/x'}\n"
    )
    found = problems(repo(tmp_path, {"inventory/fleet.yml": text}))
    assert any(
        p.startswith("inventory/fleet.yml:8:28: error:") and "not a valid regular expression" in p
        for p in found
    ), found
    assert any(
        p.startswith("inventory/fleet.yml:10:") and "never written in the inventory" in p
        for p in found
    ), found


def test_every_report_names_the_change_ticket() -> None:
    record = failed_rollout().model_copy(update={"change_ticket": "CHG0042"})
    assert "- **Change ticket** `CHG0042`" in render_markdown(record)
    assert "<dt>Change ticket</dt><dd><code>CHG0042</code></dd>" in render_html(record)
    suites = ET.fromstring(render_junit(record)).findall("testsuite")
    assert suites and all(
        s.find("properties/property[@name='change_ticket']") is not None for s in suites
    )
    assert json.loads(record.model_dump_json(by_alias=True))["change_ticket"] == "CHG0042"
    assert "Change ticket" not in render_markdown(failed_rollout())


EVENT = RolloutEvent(
    kind="ring-passed",
    rollout_id="20261202T020000Z-abc123",
    commit="0123456789abcdef0123",
    ring="canary",
    message="2 hosts passed",
    change_ticket="CHG0042",
    operator="ci@runner",
)


def test_slack_teams_and_generic_bodies() -> None:
    slack = message_body(EVENT, "slack")
    assert slack["text"] == (
        ":white_check_mark: Ring passed: canary (rollout 20261202T020000Z-abc123, "
        "commit 0123456789ab)"
    )
    assert {"type": "mrkdwn", "text": "*Change ticket*\nCHG0042"} in slack["blocks"][1]["fields"]
    teams = message_body(EVENT, "teams")
    card = teams["attachments"][0]
    assert teams["type"] == "message"
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert {"title": "Ring", "value": "canary"} in card["content"]["body"][1]["facts"]
    generic = message_body(EVENT, "json")
    assert generic["schema"] == "patchring.event/v1"
    assert generic["kind"] == "ring-passed" and generic["change_ticket"] == "CHG0042"


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int]
    bodies: list[tuple[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append((self.path, json.loads(self.rfile.read(length))))
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Handler", (_Receiver,), {"answers": [], "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _hooks() -> list[Webhook]:
    return [
        Webhook(name="chat", format="slack", url_env="SLACK_URL"),
        Webhook(name="ops", format="json", url_env="OPS_URL", events=("halted",)),
    ]


def test_a_failing_receiver_is_retried_then_recorded_failed(
    receiver: tuple[str, type[_Receiver]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    url, handler = receiver
    handler.answers = [500, 500, 500]
    pauses: list[float] = []
    secret = f"{url}/services/T000/SECRET-PATH"
    notifier = Notifier(
        _hooks(),
        {"SLACK_URL": secret},
        mask=lambda text: text.replace(secret, "********"),
        sleep=pauses.append,
    )
    assert notifier.secrets == [secret]
    notifier(EVENT)  # the json hook does not want ring-passed; its URL is not set either
    (delivery,) = notifier.deliveries
    assert (delivery.status, delivery.attempts, delivery.error) == (
        "failed",
        3,
        "HTTP 500 Internal Server Error",
    )
    assert pauses == [0.25, 0.5]
    assert [path for path, _ in handler.bodies] == ["/services/T000/SECRET-PATH"] * 3
    assert delivery.source == "env:SLACK_URL" and secret not in delivery.model_dump_json()
    notifier(EVENT.model_copy(update={"kind": "halted"}))
    delivered, unsent = notifier.deliveries[1:]
    assert (delivered.status, delivered.attempts) == ("delivered", 1)
    assert unsent.webhook == "ops" and unsent.status == "failed" and unsent.attempts == 0
    assert unsent.error == "not sent: environment variable OPS_URL is not set"


def test_a_url_file_is_read_and_checked(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("https://hooks.example/abc\n")
    bad.write_text("file:///etc/passwd\n")
    hooks = [
        # never sent (only loopback in tests): it wants another event
        Webhook(name="a", format="teams", url_file=str(good), events=("completed",)),
        Webhook(name="b", format="teams", url_file=str(bad)),
        Webhook(name="c", format="teams", url_file=str(tmp_path / "missing")),
    ]
    notifier = Notifier(hooks, {})
    assert notifier.secrets == ["https://hooks.example/abc"]
    notifier(EVENT.model_copy(update={"kind": "waiting-for-approval"}))
    errors = {d.webhook: d.error for d in notifier.deliveries}
    assert set(errors) == {"b", "c"}
    assert errors["b"] == "not sent: its URL is not an http:// or https:// URL"
    assert errors["c"] is not None and errors["c"].startswith("not sent: cannot read ")
