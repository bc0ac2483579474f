"""A rollout's record built from its ledger rows: every batch of every invocation, each host's
latest apply and verification, rings from their gates, interrupted applies, older ledgers; the
outcome detail codec; and a rollout's inputs hashed at the commit rolled out."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.gitops import compute_inputs, git_source
from orchestrator.gitops.commits import CommitSource
from orchestrator.model.outcome_detail import (
    TEXT_LIMIT,
    apply_detail,
    read_apply,
    read_verify,
    verify_detail,
)
from orchestrator.model.record import GitSource, Operator, RunRecord
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, Evidence, HostVerification
from orchestrator.policy import load_project
from orchestrator.report.markdown import render_markdown
from orchestrator.report.record import build_view
from orchestrator.report.rollout_history import rollout_history, run_status
from orchestrator.store.ledger import (
    Approval,
    GateRecord,
    HostOutcome,
    PlannedRing,
    Position,
    Rollout,
    RolloutPlan,
)

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
PLAN = RolloutPlan(
    rings=(
        PlannedRing(name="canary", batches=(("web-1",),)),
        PlannedRing(name="broad", batches=(("web-2",), ("web-3",))),
        PlannedRing(name="last", batches=(("db-1",),)),
    )
)


def rollout(status: str = "completed") -> Rollout:
    return Rollout(
        id="20261127T030000Z-abc123",
        inventory_key="k",
        commit="c0ffee" * 6 + "c0ff",
        status=status,  # type: ignore[arg-type]
        started_by="ana@laptop",
        started_at=T0,
        updated_at=T0 + timedelta(hours=1),
        position=Position(ring=2),
        plan=PLAN,
    )


def checks(*statuses: str) -> tuple[CheckResult, ...]:
    return tuple(
        CheckResult(
            check_id=f"agent/package:acme-agent/p{i}",
            title=f"property {i}",
            status=status,  # type: ignore[arg-type]
            expected="1.0-2",
            actual="1.0-2" if status == "passed" else "1.0-1",
            evidence=(Evidence(command="dpkg-query -W acme-agent", exit_status=0, stdout="x"),),
        )
        for i, status in enumerate(statuses)
    )


class Rows:
    """Ledger rows in the order recorded, as the conductor writes them."""

    def __init__(self) -> None:
        self.outcomes: list[HostOutcome] = []
        self.gates: list[GateRecord] = []
        self.approvals: list[Approval] = []

    def _at(self) -> datetime:
        return T0 + timedelta(minutes=len(self.outcomes) + len(self.gates))

    def host(self, ring: str, batch: int, host: str, phase: str, status: str, detail: str) -> None:
        self.outcomes.append(
            HostOutcome(
                rollout_id="r",
                ring=ring,
                batch=batch,
                host=host,
                phase=phase,  # type: ignore[arg-type]
                status=status,
                detail=detail,
                at=self._at(),
            )
        )

    def applied(self, ring: str, batch: int, host: str, status: str = "changed") -> None:
        outcome = ResourceOutcome(
            resource_id="package:acme-agent", policy="agent", status="changed", summary="1.0-2"
        )
        result = HostResult(host=host, status=status, outcomes=(outcome,))  # type: ignore[arg-type]
        self.host(ring, batch, host, "apply", status, apply_detail(result))

    def verified(self, ring: str, batch: int, host: str, *statuses: str) -> None:
        status = "passed" if all(s == "passed" for s in statuses) else "failed"
        verification = HostVerification(host=host, status=status, results=checks(*statuses))  # type: ignore[arg-type]
        self.host(ring, batch, host, "verify", status, verify_detail(verification))

    def gate(self, ring: str, outcome: str, *reasons: str) -> None:
        self.gates.append(
            GateRecord(rollout_id="r", ring=ring, outcome=outcome, reasons=reasons, at=self._at())  # type: ignore[arg-type]
        )

    def history(self, status: str = "completed"):  # type: ignore[no-untyped-def]
        return rollout_history(rollout(status), self.outcomes, self.gates, self.approvals)


def killed_and_resumed() -> Rows:
    """canary and broad batch 1 by a first invocation, killed during broad batch 2 (web-3's
    apply started, never finished); a second invocation re-applies it, passes both gates and
    the last ring."""
    rows = Rows()
    rows.applied("canary", 0, "web-1")
    rows.verified("canary", 0, "web-1", "passed", "passed")
    rows.verified("canary", 0, "web-1", "passed", "passed")  # the gate's verification
    rows.gate("canary", "passed")
    rows.approvals.append(
        Approval(rollout_id="r", ring="canary", who="ana@laptop", reason="looks good", at=T0)
    )
    rows.applied("broad", 0, "web-2")
    rows.verified("broad", 0, "web-2", "passed", "passed")
    rows.host("broad", 1, "web-3", "apply", "started", "")  # killed here
    rows.host("broad", 1, "web-3", "apply", "started", "")  # the resume
    rows.applied("broad", 1, "web-3")
    rows.verified("broad", 1, "web-3", "passed", "passed")
    for host, batch in (("web-2", 0), ("web-3", 1)):
        rows.verified("broad", batch, host, "passed", "passed")
    rows.gate("broad", "passed")
    rows.applied("last", 0, "db-1", "unchanged")
    rows.verified("last", 0, "db-1", "passed", "passed")
    rows.gate("last", "passed")
    return rows


def record_of(history, status: str = "succeeded") -> RunRecord:  # type: ignore[no-untyped-def]
    return RunRecord(
        id="20261127T040000Z-rollout-beef",
        kind="rollout",
        status=status,  # type: ignore[arg-type]
        started=T0,
        finished=T0 + timedelta(hours=1),
        tool_version="0",
        source=GitSource(repo="/r"),
        operator=Operator(user="ana", hostname="laptop"),
        apply=history.apply,
        verify=history.verify,
        rings=history.rings,
        rollout=history.log,
    )


def test_a_killed_and_resumed_rollout_reports_every_host_of_every_ring() -> None:
    history = killed_and_resumed().history()
    assert [(a.host, a.ring, a.status) for a in history.apply] == [
        ("web-1", "canary", "changed"),
        ("web-2", "broad", "changed"),
        ("web-3", "broad", "changed"),
        ("db-1", "last", "unchanged"),
    ]
    assert history.apply[0].outcomes[0].summary == "1.0-2"  # per resource, not a status only
    assert [(v.host, v.status, len(v.results)) for v in history.verify] == [
        ("web-1", "passed", 2),
        ("web-2", "passed", 2),
        ("web-3", "passed", 2),
        ("db-1", "passed", 2),
    ]
    assert history.verify[0].results[0].expected == "1.0-2"
    assert [(r.ring, r.status, r.hosts) for r in history.rings] == [
        ("canary", "passed", ("web-1",)),
        ("broad", "passed", ("web-2", "web-3")),
        ("last", "passed", ("db-1",)),
    ]
    view = build_view(record_of(history))
    assert view.headline == "Rollout succeeded: 4 of 4 hosts compliant"
    assert [(r.ring, r.compliant, len(r.hosts)) for r in view.rings] == [
        ("canary", 1, 1),
        ("broad", 2, 2),
        ("last", 1, 1),
    ]


def test_the_log_keeps_every_outcome_gate_and_approval_in_order() -> None:
    rows = killed_and_resumed()
    log = rows.history().log
    assert [(e.host, e.phase, e.status) for e in log.events] == [
        (o.host, o.phase, o.status) for o in rows.outcomes
    ]
    assert [(g.ring, g.outcome) for g in log.gates] == [
        ("canary", "passed"),
        ("broad", "passed"),
        ("last", "passed"),
    ]
    assert [(a.ring, a.reason) for a in log.approvals] == [("canary", "looks good")]
    assert (log.id, log.status, log.started_by) == (rollout().id, "completed", "ana@laptop")
    text = render_markdown(record_of(rows.history()))
    assert "approval of canary by ana@laptop: looks good" in text
    assert "| web-3 | broad | compliant | changed | 2/2 |" in text


def test_an_apply_started_and_never_finished_is_shown_interrupted() -> None:
    rows = Rows()
    rows.applied("canary", 0, "web-1")
    rows.verified("canary", 0, "web-1", "passed", "passed")
    rows.gate("canary", "passed")
    rows.applied("broad", 0, "web-2")
    rows.verified("broad", 0, "web-2", "passed")
    rows.host("broad", 0, "web-2", "apply", "started", "")  # a later attempt, killed
    history = rows.history("running")
    web2 = next(a for a in history.apply if a.host == "web-2")
    assert web2.status == "failed"
    assert web2.error is not None and "never finished: interrupted" in web2.error
    assert [v.host for v in history.verify] == ["web-1"]  # web-2's check predates the attempt
    assert [(r.ring, r.status) for r in history.rings] == [
        ("canary", "passed"),
        ("broad", "in-progress"),
        ("last", "not-started"),
    ]
    view = build_view(record_of(history, run_status("running")))
    assert view.headline == "Rollout interrupted before it finished"
    assert [row.state for row in view.hosts] == [
        "compliant",
        "failing",
        "not-reached",
        "not-reached",
    ]


def test_ring_status_comes_from_its_latest_gate() -> None:
    rows = Rows()
    rows.applied("canary", 0, "web-1")
    rows.verified("canary", 0, "web-1", "passed")
    rows.gate("canary", "inconclusive", "1 host(s) not observed: web-1 (unreachable: timeout)")
    rows.gate("canary", "passed")  # resumed once the host was back
    rows.applied("broad", 0, "web-2", "failed")
    rows.verified("broad", 0, "web-2", "passed", "failed")
    rows.gate("broad", "failed", "1 of 2 hosts failed (1 apply-failed)")
    rows.host("broad", 0, "web-2", "rollback", "passed", "")
    rings = {r.ring: r for r in rows.history("rolled-back").rings}
    assert (rings["canary"].status, rings["canary"].reason) == ("passed", "")
    assert rings["broad"].status == "failed"
    assert rings["broad"].reason == "1 of 2 hosts failed (1 apply-failed); rolled back 1 host(s)"
    assert rings["broad"].failed_hosts == ("web-2",)
    paused = Rows()
    paused.applied("canary", 0, "web-1")
    paused.gate("canary", "inconclusive", "1 host(s) not observed: web-1 (unreachable: x)")
    (canary, *_) = paused.history("paused").rings
    assert (canary.status, canary.reason) == (
        "inconclusive",
        "1 host(s) not observed: web-1 (unreachable: x)",
    )
    view = build_view(record_of(paused.history("paused")))
    assert view.headline == "Rollout paused: 1 of 4 hosts compliant"  # applied, not verified


def test_details_of_an_older_ledger_still_read() -> None:
    rows = Rows()
    rows.host("canary", 0, "web-1", "apply", "failed", "E: dpkg was interrupted")
    rows.host("canary", 0, "web-1", "verify", "failed", json.dumps(["agent/package/version"]))
    (applied,) = rows.history().apply
    (verified,) = rows.history().verify
    assert (applied.status, applied.error) == ("failed", "E: dpkg was interrupted")
    assert [(c.check_id, c.status) for c in verified.results] == [
        ("agent/package/version", "failed")
    ]


def test_the_detail_codec_round_trips_and_stays_small() -> None:
    result = HostResult(
        host="web-1",
        ring="canary",
        status="changed",
        outcomes=(
            ResourceOutcome(
                resource_id="file:/etc/x",
                policy="p",
                status="changed",
                summary="written",
                diff="+" * (TEXT_LIMIT * 3),
            ),
        ),
    )
    back = read_apply("web-1", "canary", "changed", apply_detail(result))
    assert back.outcomes[0].summary == "written"
    assert len(back.outcomes[0].diff) < TEXT_LIMIT + 100
    assert back.outcomes[0].diff.endswith(f"(cut: {TEXT_LIMIT * 2} more characters)")
    verification = HostVerification(
        host="web-1", status="failed", results=checks("passed", "failed")
    )
    detail = verify_detail(verification)
    again = read_verify("web-1", "canary", "failed", detail)
    assert [c.status for c in again.results] == ["passed", "failed"]
    assert again.results[0].evidence == ()  # evidence kept only where a check did not pass
    assert again.results[1].evidence == verification.results[1].evidence
    assert '"host"' not in detail  # the row has it


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("completed", "succeeded"),
        ("waiting", "succeeded"),
        ("paused", "succeeded"),
        ("halted", "halted"),
        ("running", "interrupted"),
        ("rolled-back", "succeeded"),
    ],
)
def test_run_status_of_a_rollout(state: str, status: str) -> None:
    assert run_status(state) == status


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Dana Ops", "-c", "user.email=dana@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_a_rollout_of_a_commit_hashes_that_commits_files(tmp_path: Path) -> None:
    files = {
        "policies/agent.yml": "name: agent\nselect: {all: true}\nfiles:\n"
        "  - {path: /etc/agent.conf, template: templates/agent.conf.j2}\n",
        "inventory/fleet.yml": "rings:\n  - name: canary\n",
        "templates/agent.conf.j2": "port = 7070\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "port 7070")
    sha = CommitSource(tmp_path, "HEAD").sha
    (tmp_path / "templates" / "agent.conf.j2").write_text("port = 8080\n")  # a later commit
    _git(tmp_path, "commit", "-qam", "port 8080")
    (tmp_path / "templates" / "agent.conf.j2").write_text("port = 9090\n")  # and uncommitted
    (tmp_path / "inventory" / "lab.yml").write_text(  # not in Git: read from the working tree
        "hosts:\n  web-01: {address: 10.0.0.1, ring: canary}\n"
    )
    project = load_project(CommitSource(tmp_path, sha))
    inputs = compute_inputs(tmp_path, project, at=sha)
    assert inputs["templates/agent.conf.j2"] == hashlib.sha256(b"port = 7070\n").hexdigest()
    lab = (tmp_path / "inventory" / "lab.yml").read_bytes()
    assert inputs["inventory/lab.yml"] == hashlib.sha256(lab).hexdigest()
    source = git_source(tmp_path, sha)
    assert (source.commit, source.message, source.dirty) == (sha, "port 7070", False)
    assert git_source(tmp_path).dirty is True  # the working tree, as before
