"""Record builders (run ids, operator from CI variables, input hashes, Git provenance), masking,
and the view every renderer draws from, against one fixed failed rollout.

`failed_rollout()` is the shared synthetic record: 3 rings, 6 hosts, the canary ring failing
with dpkg's `acme-agent: simulated broken postinst` and failed checks; later rings not reached.
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.gitops import compute_inputs, git_source, used_files
from orchestrator.model.record import GitSource, Operator, RingOutcome, RunRecord
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, Evidence, HostVerification
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.report.masking import MASK, Masker, looks_secret, mask_record
from orchestrator.report.record import build_view, new_run_id, operator_from_env, visible

STARTED = datetime(2026, 11, 27, 3, 18, 40, tzinfo=UTC)
TOKEN = "tok-9f8e7d6c5b4a"
DPKG_ERROR = (
    "Setting up acme-agent (1.0-2) ...\n"
    f"acme-agent: registering with https://acme.example/api?token={TOKEN}\n"
    "acme-agent: simulated broken postinst\n"
    "dpkg: error processing package acme-agent (--configure):\n"
    " installed acme-agent package post-installation script subprocess returned error exit "
    "status 1\n"
    "Errors were encountered while processing:\n"
    " acme-agent\n"
    "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
)
RINGS = {
    "canary": ("web-01", "web-02"),
    "pilot": ("web-03", "web-04"),
    "broad": ("web-05", "web-06"),
}


def _check(
    policy: str,
    resource: str,
    prop: str,
    title: str,
    expected: str,
    actual: str | None = None,
    status: str = "passed",
    **extra: object,
) -> CheckResult:
    return CheckResult.model_validate(
        {
            "check_id": f"{policy}/{resource}/{prop}",
            "title": title,
            "status": status,
            "expected": expected,
            "actual": expected if actual is None else actual,
            "policy": policy,
            "resource_id": resource,
            **extra,
        }
    )


def _canary_checks(host: str) -> tuple[CheckResult, ...]:
    status_cmd = "dpkg-query -W -f='${Status} ${Version}' acme-agent"
    return (
        _check(
            "acme-agent",
            "package:acme-agent",
            "installed",
            "acme-agent is installed",
            "installed",
            "half-configured",
            "failed",
            message="dpkg left the package half-configured: its postinst failed",
            evidence=(
                Evidence(
                    command=status_cmd,
                    exit_status=0,
                    stdout="install ok half-configured 1.0-2",
                ),
            ),
        ),
        _check("acme-agent", "package:acme-agent", "version", "acme-agent version", "1.0-2"),
        _check(
            "acme-agent",
            "file:/etc/acme/agent.conf",
            "content",
            "agent.conf content",
            "sha256 9b1c…",
        ),
        _check("acme-agent", "file:/etc/acme/agent.conf", "mode", "agent.conf mode", "0640"),
        _check(
            "acme-agent",
            "service:acme-agent",
            "running",
            "acme-agent is running",
            "running",
            "inactive",
            "failed",
            evidence=(
                Evidence(
                    command="systemctl is-active acme-agent", exit_status=3, stdout="inactive\n"
                ),
                Evidence(
                    command="journalctl -u acme-agent -n 3 --no-pager",
                    exit_status=0,
                    stdout=f"{host} systemd[1]: acme-agent.service: Failed, result 'exit-code'\n",
                ),
            ),
        ),
        _check("acme-agent", "service:acme-agent", "enabled", "acme-agent is enabled", "enabled"),
        _check(
            "hardening",
            "sysctl:net.ipv4.conf.all.send_redirects",
            "value",
            "send_redirects off",
            "0",
        ),
        _check("hardening", "package:telnet", "absent", "telnet is absent", "absent"),
        CheckResult(
            check_id="acme-agent/checks/test_agent.py::test_agent_listens",
            title="test_agent_listens",
            status="error" if host == "web-02" else "failed",
            expected="test passes",
            actual="ConnectionRefusedError" if host == "web-02" else "assert False",
            message="port 7070 <closed> & nothing listening",
            source="user",
            policy="acme-agent",
            evidence=(Evidence(command="ss -Htln 'sport = :7070'", exit_status=0, stdout=""),),
        ),
    )


def _canary_apply(host: str) -> HostResult:
    return HostResult(
        host=host,
        ring="canary",
        status="failed",
        outcomes=(
            ResourceOutcome(
                resource_id="apt_repository:lab",
                policy="lab-repo",
                status="unchanged",
                summary="lab repository in place",
            ),
            ResourceOutcome(
                resource_id="package:acme-agent",
                policy="acme-agent",
                status="failed",
                summary="acme-agent 1.0-1 -> 1.0-2",
                error=DPKG_ERROR,
            ),
            ResourceOutcome(
                resource_id="file:/etc/acme/agent.conf",
                policy="acme-agent",
                status="changed",
                summary="/etc/acme/agent.conf: content",
                diff=f"--- a\n+++ b\n@@ -1 +1 @@\n-name = old\n+name = {host}\n",
            ),
            ResourceOutcome(
                resource_id="service:acme-agent",
                policy="acme-agent",
                status="skipped",
                summary="skipped: package:acme-agent failed",
            ),
        ),
        remote_commands=6,
        seconds=41.5,
    )


def failed_rollout() -> RunRecord:
    """A rollout halted in its canary ring: both canary hosts failed; pilot and broad untouched."""
    return RunRecord(
        id="20261127T031840Z-rollout-3fa2",
        kind="rollout",
        status="halted",
        started=STARTED,
        finished=STARTED + timedelta(minutes=2, seconds=14),
        tool_version="0.1.0",
        source=GitSource(
            repo="/srv/fleet-policies",
            commit="9c1e4b2a7f3d5e6c8b9a0d1e2f3a4b5c6d7e8f90",
            author="Dana Ops <dana@example.com>",
            date="2026-11-26T17:02:11+01:00",
            message="acme-agent: upgrade to 1.0-2 fleet-wide\n\nTicket OPS-1432.",
            dirty=False,
        ),
        inputs={
            "checks/test_agent.py": "4e1f" * 16,
            "inventory/fleet.yml": "a3b2" * 16,
            "policies/acme-agent.yml": "77c0" * 16,
            "policies/hardening.yml": "19d4" * 16,
            "templates/agent.conf.j2": "e5e5" * 16,
        },
        operator=Operator(
            user="runner",
            hostname="ci-worker-3",
            ci={
                "system": "github-actions",
                "run_id": "7781",
                "job": "rollout",
                "ref": "refs/heads/main",
                "actor": "dana",
                "url": "https://github.com/acme/fleet-policies/actions/runs/7781",
            },
        ),
        selection={"to": None},
        apply=(_canary_apply("web-01"), _canary_apply("web-02")),
        verify=tuple(
            HostVerification(
                host=host, ring="canary", status="failed", results=_canary_checks(host), seconds=3.2
            )
            for host in RINGS["canary"]
        ),
        rings=(
            RingOutcome(
                ring="canary",
                hosts=RINGS["canary"],
                status="failed",
                failed_hosts=RINGS["canary"],
                reason="2 of 2 hosts failed; the ring's budget allows 0",
            ),
            RingOutcome(
                ring="pilot", hosts=RINGS["pilot"], status="not-started", reason="halted at canary"
            ),
            RingOutcome(
                ring="broad", hosts=RINGS["broad"], status="not-started", reason="halted at canary"
            ),
        ),
    )


# --- run ids and operator ------------------------------------------------------------------------


def test_run_ids_are_utc_stamped_and_sort_by_time() -> None:
    assert new_run_id("apply", STARTED, "3fa2") == "20261127T031840Z-apply-3fa2"
    paris = timezone(timedelta(hours=1))
    assert new_run_id("verify", datetime(2026, 11, 27, 4, 18, 40, tzinfo=paris), "00ff") == (
        "20261127T031840Z-verify-00ff"
    )
    earlier = new_run_id("rollout", STARTED - timedelta(seconds=1), "ffff")
    assert earlier < new_run_id("apply", STARTED, "0000")
    assert len(new_run_id("apply", STARTED).rsplit("-", 1)[1]) == 4
    with pytest.raises(ValueError, match="hex"):
        new_run_id("apply", STARTED, "zz!")


def test_operator_outside_ci_is_the_local_user() -> None:
    assert operator_from_env({"HOME": "/root"}, "dana", "ctl-01") == Operator(
        user="dana", hostname="ctl-01"
    )
    assert operator_from_env({"CI": "false"}, "dana", "ctl-01").ci == {}


def test_operator_in_github_actions_has_run_link_ref_and_actor() -> None:
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "7781",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_JOB": "rollout",
        "GITHUB_WORKFLOW": "Fleet",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": "9c1e4b2",
        "GITHUB_ACTOR": "dana",
        "GITHUB_REPOSITORY": "acme/fleet-policies",
        "GITHUB_SERVER_URL": "https://github.example.com",
    }
    ci = operator_from_env(env, "runner", "worker").ci
    assert ci == {
        "system": "github-actions",
        "workflow": "Fleet",
        "job": "rollout",
        "run_id": "7781",
        "attempt": "2",
        "ref": "refs/heads/main",
        "sha": "9c1e4b2",
        "actor": "dana",
        "repository": "acme/fleet-policies",
        "url": "https://github.example.com/acme/fleet-policies/actions/runs/7781",
    }


def test_operator_in_gitlab_jenkins_and_generic_ci() -> None:
    gitlab = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_JOB_ID": "991",
        "CI_JOB_NAME": "rollout",
        "CI_JOB_URL": "https://gitlab.example.com/acme/p/-/jobs/991",
        "CI_COMMIT_REF_NAME": "main",
        "GITLAB_USER_LOGIN": "dana",
        "CI_PIPELINE_ID": "",
    }
    ci = operator_from_env(gitlab, "runner", "worker").ci
    assert ci["system"] == "gitlab-ci" and ci["url"].endswith("/jobs/991")
    assert ci["actor"] == "dana" and ci["ref"] == "main" and "pipeline_id" not in ci
    jenkins = {
        "JENKINS_URL": "https://ci/",
        "JOB_NAME": "fleet",
        "BUILD_NUMBER": "12",
        "BUILD_URL": "https://ci/job/fleet/12/",
    }
    assert operator_from_env(jenkins, "jenkins", "agent").ci == {
        "system": "jenkins",
        "job": "fleet",
        "run_id": "12",
        "url": "https://ci/job/fleet/12/",
    }
    assert operator_from_env({"CI": "1", "CI_JOB_ID": "5"}, "u", "h").ci == {
        "system": "ci",
        "run_id": "5",
    }


# --- provenance: Git and input hashes ------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Dana Ops", "-c", "user.email=dana@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_git_source_reads_commit_and_dirty_state(tmp_path: Path) -> None:
    assert git_source(tmp_path) == GitSource(repo=str(tmp_path.resolve()))
    _git(tmp_path, "init", "-q")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yml").write_text("name: a\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "Pin the agent\n\nTicket OPS-1.")
    source = git_source(tmp_path)
    assert source.commit is not None and len(source.commit) == 40
    assert source.author == "Dana Ops <dana@example.com>"
    assert source.message == "Pin the agent\n\nTicket OPS-1."
    assert source.dirty is False and source.date
    (tmp_path / ".patchring" / "runs").mkdir(parents=True)  # our own history never counts
    (tmp_path / ".patchring" / "runs" / "x.json").write_text("{}")
    assert git_source(tmp_path).dirty is False
    (tmp_path / "policies" / "new.yml").write_text("name: new\n")  # untracked counts
    assert git_source(tmp_path).dirty is True
    (tmp_path / "policies" / "new.yml").unlink()
    (tmp_path / "policies" / "a.yml").write_text("name: b\n")
    assert git_source(tmp_path).dirty is True
    _git(tmp_path, "add", ".")  # staged, not committed
    assert git_source(tmp_path).dirty is True
    _git(tmp_path, "commit", "-q", "-m", "b")
    assert git_source(tmp_path).dirty is False
    _git(tmp_path, "mv", "policies/a.yml", "policies/ä b.yml")  # a staged rename
    assert git_source(tmp_path).dirty is True


POLICY = """\
name: agent
select:
  all: true
checks: [checks/test_agent.py]
files:
  - path: /etc/agent.conf
    template: templates/agent.conf.j2
"""
INVENTORY = """\
rings:
  - name: canary
hosts:
  web-01: {address: 10.0.0.1, ring: canary}
"""


def test_inputs_hash_every_policy_inventory_and_template_file(tmp_path: Path) -> None:
    for path, text in {
        "policies/agent.yml": POLICY,
        "inventory/fleet.yml": INVENTORY,
        "templates/agent.conf.j2": "port = 7070\n",
        "templates/unused.j2": "not used\n",
        "checks/test_agent.py": "def test_agent(host):\n    assert host\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    project = load_project(WorktreeSource(tmp_path))
    assert used_files(project) == [
        "checks/test_agent.py",
        "inventory/fleet.yml",
        "policies/agent.yml",
        "templates/agent.conf.j2",
    ]
    inputs = compute_inputs(tmp_path, project, extra=["checks/gone.py"])
    assert list(inputs) == [
        "checks/gone.py",
        "checks/test_agent.py",
        "inventory/fleet.yml",
        "policies/agent.yml",
        "templates/agent.conf.j2",
    ]
    assert inputs["checks/gone.py"] == "missing"
    assert inputs["templates/agent.conf.j2"] == hashlib.sha256(b"port = 7070\n").hexdigest()


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "db_password",
        "DB_PASSWD",
        "vault.token",
        "apiKey",
        "api-key",
        "ssh_private_key",
        "aws_credentials",
        "client_secret",
        "web-01:agent_token",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["agent_version", "port", "tokenizer-01:port", "owner"])
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


def test_masker_replaces_secret_values_at_any_depth() -> None:
    masker = Masker.from_vars(
        {
            "agent_token": TOKEN,
            "agent_version": "1.0-2",
            "db": {"password": "hunter2-long", "host": "db.internal"},
            "api_keys": ["key-one-1111", "key-two-2222"],
            "pin": {"secret": "123"},  # too short to mask safely
            "tls": {"private_key": "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"},
        }
    )
    text = (
        f"token={TOKEN} version 1.0-2 pw hunter2-long at db.internal key-two-2222 pin 123\n"
        "+MIIEvQIBADANBg\n"
    )
    assert masker(text) == (
        f"token={MASK} version 1.0-2 pw {MASK} at db.internal {MASK} pin 123\n+{MASK}\n"
    )
    assert Masker()("nothing to hide") == "nothing to hide"


def test_longer_secret_containing_another_is_masked_whole() -> None:
    masker = Masker(("abcd", "abcdefgh"))
    assert masker("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_mask_record_covers_errors_diffs_and_evidence() -> None:
    record = failed_rollout()
    masked = mask_record(record, Masker.from_vars({"agent_token": TOKEN}))
    dumped = masked.model_dump_json()
    assert TOKEN not in dumped and MASK in masked.apply[0].outcomes[1].error
    assert TOKEN in record.model_dump_json()  # the original is untouched


# --- the view ------------------------------------------------------------------------------------


def test_view_counts_compliance_per_run_and_ring() -> None:
    view = build_view(failed_rollout())
    c = view.compliance
    assert (c.checks_passed, c.checks_failed, c.checks_error, c.checks_total) == (12, 5, 1, 18)
    assert (c.hosts_compliant, c.hosts_total, c.hosts_not_reached, c.apply_failures) == (
        0,
        6,
        4,
        2,
    )
    assert [(r.ring, r.status, r.hosts, r.checks_passed, r.checks_total) for r in view.rings] == [
        ("canary", "failed", ("web-01", "web-02"), 12, 18),
        ("pilot", "not-started", ("web-03", "web-04"), 0, 0),
        ("broad", "not-started", ("web-05", "web-06"), 0, 0),
    ]
    assert [(h.host, h.state) for h in view.hosts] == [
        ("web-01", "failing"),
        ("web-02", "failing"),
        ("web-03", "not-reached"),
        ("web-04", "not-reached"),
        ("web-05", "not-reached"),
        ("web-06", "not-reached"),
    ]
    assert view.headline == "Rollout halted in ring canary; later rings were not touched"


def test_view_columns_are_grouped_by_resource() -> None:
    view = build_view(failed_rollout())
    assert [(c.group, c.label) for c in view.columns] == [
        ("package:acme-agent", "installed"),
        ("package:acme-agent", "version"),
        ("file:/etc/acme/agent.conf", "content"),
        ("file:/etc/acme/agent.conf", "mode"),
        ("service:acme-agent", "running"),
        ("service:acme-agent", "enabled"),
        ("sysctl:net.ipv4.conf.all.send_redirects", "value"),
        ("package:telnet", "absent"),
        ("user checks", "agent_listens"),
    ]
    assert [(f.host, f.check.check_id.rsplit("/", 1)[1]) for f in view.check_failures] == [
        ("web-01", "installed"),
        ("web-01", "running"),
        ("web-01", "test_agent.py::test_agent_listens"),
        ("web-02", "installed"),
        ("web-02", "running"),
        ("web-02", "test_agent.py::test_agent_listens"),
    ]
    assert [(f.host, f.resource_id) for f in view.apply_failures] == [
        ("web-01", "package:acme-agent"),
        ("web-02", "package:acme-agent"),
    ]


def test_view_of_a_verify_run_without_ring_outcomes() -> None:
    record = failed_rollout().model_copy(
        update={"kind": "verify", "status": "failed", "apply": (), "rings": ()}
    )
    view = build_view(record)
    assert [(r.ring, r.status) for r in view.rings] == [("canary", "failed")]
    assert view.headline == "Verify failed: 2 of 2 hosts not compliant"


def test_visible_drops_colour_codes_and_shows_control_characters() -> None:
    assert visible("\x1b[31mred\x1b[0m\r\nnext\x07") == "red\nnext\\x07"
