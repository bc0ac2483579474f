"""The CI steps script on the lab (validate, plan, rollout with its exit-code mapping, report
artifacts), change tickets required by a ring, and notifications in the Slack, Teams and generic
formats to a local HTTP receiver on 127.0.0.1 (one of which answers 500), on two hosts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import (
    PROJECT,
    break_canary,
    commit,
    make_repo,
    patchring,
    write_yaml,
)

pytestmark = pytest.mark.integration

SCRIPT = PROJECT / "examples" / "ci" / "patchring-ci.sh"
SECRET_PATH = "/services/T0SECRET/B0SECRET/XyZsecretPart"


class _Receiver(BaseHTTPRequestHandler):
    """Records every POST; the path `/broken...` always answers 500."""

    received: list[tuple[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, body))
        self.send_response(500 if self.path.startswith("/broken") else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    handler = type("Handler", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def two_hosts(lab: Lab) -> Iterator[list[str]]:
    chosen = [lab.ring("canary")[0], lab.ring("pilot")[0]]
    lab.reset(chosen)
    yield chosen
    lab.reset(chosen)


def _repo(tmp_path: Path, lab: Lab, hosts: list[str]) -> Path:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3})
    lab_file = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(lab_file.read_text())
    data["hosts"] = {name: data["hosts"][name] for name in hosts}
    write_yaml(lab_file, data)
    fleet = repo / "inventory" / "fleet.yml"
    inventory = yaml.safe_load(fleet.read_text())
    for ring in inventory["rings"]:
        if ring["name"] == "canary":
            ring.update(approval=True, auto_rollback=True)
        if ring["name"] == "pilot":
            ring.update(require_change_ticket=True, change_ticket_pattern=r"CHG\d+")
    inventory["notifications"] = [
        {"name": "chat", "format": "slack", "url_env": "SLACK_WEBHOOK_URL"},
        {"name": "office", "format": "teams", "url_env": "TEAMS_WEBHOOK_URL"},
        {"name": "events", "format": "json", "url_file": "../secrets/events-url"},
        {"name": "down", "format": "json", "url_env": "DOWN_WEBHOOK_URL", "events": ["started"]},
    ]
    write_yaml(fleet, inventory)
    commit(repo, "two hosts; pilot needs a change ticket; webhooks")
    return repo


def _env(url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    secrets = tmp_path / "repo" / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "events-url").write_text(f"{url}/events{SECRET_PATH}\n")
    return {
        **env,
        "NO_PROXY": "127.0.0.1",
        "SLACK_WEBHOOK_URL": f"{url}/slack{SECRET_PATH}",
        "TEAMS_WEBHOOK_URL": f"{url}/teams{SECRET_PATH}",
        "DOWN_WEBHOOK_URL": f"{url}/broken{SECRET_PATH}",
        "PATCHRING": f"{sys.executable} -m orchestrator",
        "PATCHRING_REPO": str(tmp_path / "repo"),
        "PATCHRING_OUT": str(tmp_path / "out"),
        **more,
    }


def _step(step: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), step],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )


def _all_text(*folders: Path) -> str:
    return "".join(p.read_text() for f in folders for p in sorted(f.rglob("*")) if p.is_file())


def test_ci_steps_tickets_and_notifications_on_the_lab(
    tmp_path: Path, lab: Lab, two_hosts: list[str], receiver: tuple[str, list[Any]]
) -> None:
    url, received = receiver
    repo = _repo(tmp_path, lab, two_hosts)
    env = _env(url, tmp_path)
    out = tmp_path / "out"

    validated = _step("validate", env)
    assert validated.returncode == 0, validated.stderr
    assert "OK: 4 policies, 2 hosts" in validated.stdout

    planned = _step("plan", env)  # no base ref: the live plan; changes pending is a success
    assert planned.returncode == 0, planned.stderr
    assert "plan: changes pending" in planned.stdout
    assert "acme-agent" in (out / "plan.md").read_text()

    refused = _step("rollout", env)  # pilot requires a ticket: exit 1, nothing done
    assert refused.returncode == 1
    assert "ring 'pilot' requires a change ticket; nothing was done" in refused.stderr
    assert "rollout refused or failed (exit 1)" in refused.stderr
    assert received == [] and not list((repo / ".patchring" / "runs").glob("*.json"))
    status = patchring(repo, "status", "--json")
    assert status.code == 0 and status.json()["rollouts"] == []

    env["PATCHRING_CHANGE_TICKET"] = "CHG0042"
    rolled = _step("rollout", env)  # canary passes, then the rollout waits for approval: success
    assert rolled.returncode == 0, rolled.stderr
    assert "rollout completed or waiting" in rolled.stdout
    first = json.loads((out / "rollout.json").read_text())
    assert first["rollout"]["status"] == "waiting"
    assert [(r["ring"], r["status"]) for r in first["rings"]] == [
        ("canary", "passed"),
        ("pilot", "not-started"),
    ]
    # the receiver that answers 500 was retried, recorded, and did not stop the rollout
    failed = [n for n in first["notifications"] if n["status"] == "failed"]
    assert failed == [
        {
            "webhook": "down",
            "format": "json",
            "source": "env:DOWN_WEBHOOK_URL",
            "event": "started",
            "ring": None,
            "status": "failed",
            "attempts": 3,
            "error": "HTTP 500 Internal Server Error",
        }
    ]
    assert "notification started to webhook down failed after 3 attempts" in rolled.stderr
    assert patchring(repo, "approve", "canary", "--reason", "canary is fine").code == 0
    continued = _step("rollout", env)
    assert continued.returncode == 0, continued.stderr
    record = json.loads((out / "rollout.json").read_text())
    assert record["change_ticket"] == "CHG0042" and record["rollout"]["change_ticket"] == "CHG0042"
    assert [(r["ring"], r["status"]) for r in record["rings"]] == [
        ("canary", "passed"),
        ("pilot", "passed"),
    ]
    assert {r["host"]: r["status"] for r in record["apply"]} == dict.fromkeys(two_hosts, "changed")

    # every format arrived, each event once per webhook
    by_hook: dict[str, list[Any]] = {}
    for path, body in received:
        assert path.endswith(SECRET_PATH)
        by_hook.setdefault(path.split("/")[1], []).append(body)
    assert [(b["kind"], b["ring"]) for b in by_hook["events"]] == [
        ("started", None),
        ("ring-passed", "canary"),
        ("waiting-for-approval", "canary"),
        ("ring-passed", "pilot"),
        ("completed", None),
    ]
    assert all(b["change_ticket"] == "CHG0042" for b in by_hook["events"])
    assert by_hook["slack"][0]["text"].startswith(":rocket: Rollout started")
    assert len(by_hook["slack"]) == 5 and all("blocks" in b for b in by_hook["slack"])
    teams = by_hook["teams"][-1]["attachments"][0]["content"]
    assert teams["type"] == "AdaptiveCard" and teams["body"][0]["text"].startswith(
        "Rollout completed"
    )
    assert len(by_hook["teams"]) == 5
    assert len(by_hook["broken"]) == 3  # one event ("started"), three attempts

    # the ticket is in the ledger and every report; the secret URLs are in none of them
    with sqlite3.connect(repo / ".patchring" / "ledger.db") as db:
        assert db.execute("SELECT change_ticket FROM rollouts").fetchall() == [("CHG0042",)]
    db.close()
    for name in ("junit.xml", "report.html", "report.md", "run.json"):
        assert "CHG0042" in (out / name).read_text(), name
    written = _all_text(out, repo / ".patchring" / "runs")
    shown = rolled.stdout + rolled.stderr + continued.stdout + continued.stderr
    assert "XyZsecretPart" not in written + shown

    # a new rollout of the same commit changes nothing
    assert _step("rollout", env).returncode == 0
    assert patchring(repo, "approve", "canary", "--reason", "again").code == 0
    again = _step("rollout", env)
    assert again.returncode == 0, again.stderr
    second = json.loads((out / "rollout.json").read_text())
    assert second["rollout"]["status"] == "completed"
    assert {r["host"]: r["status"] for r in second["apply"]} == dict.fromkeys(
        two_hosts, "unchanged"
    )

    received.clear()
    break_canary(repo)
    commit(repo, "acme-agent 1.0-3 for canary")
    halted = _step("rollout", env)  # a halt fails the job, and its reports are still written
    assert halted.returncode == 3, halted.stderr
    assert "rollout halted: failure" in halted.stderr
    third = json.loads((out / "rollout.json").read_text())
    assert third["rings"][0]["status"] == "failed"
    assert third["rollout"]["status"] == "rolled-back"  # canary's auto_rollback
    assert third["id"] in (out / "report.md").read_text()
    kinds = [(b["kind"], b["ring"]) for p, b in received if p.startswith("/events")]
    assert kinds == [("started", None), ("halted", "canary"), ("rolled-back", None)]
    slack = [b["text"] for p, b in received if p.startswith("/slack")]
    assert slack[1].startswith(":octagonal_sign: Rollout halted: canary (rollout ")
