"""The CI kit as users get it: the pipeline templates pass their ecosystems' linters (actionlint;
GitLab's CI schema as check-jsonschema ships it), call only steps their script has, the
pre-commit hooks run under the real pre-commit in a scratch repository, and `schema --write`
puts the editors' schema where the documented modeline points."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.main import main
from orchestrator.policy import policy_json_schema

PROJECT = Path(__file__).resolve().parents[2]
CI = PROJECT / "examples" / "ci"
WORKFLOWS = sorted((CI / "github").glob("*.yml"))
GITLAB = CI / "gitlab" / ".gitlab-ci.yml"
BIN = Path(sys.executable).parent


def _run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_github_workflows_pass_actionlint(tmp_path: Path) -> None:
    assert len(WORKFLOWS) == 2
    linted = _run(BIN / "actionlint", "-no-color", *WORKFLOWS)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    broken = tmp_path / "broken.yml"  # the linter does catch a mistake in these files
    broken.write_text(WORKFLOWS[0].read_text().replace("runs-on:", "run-on:"))
    assert _run(BIN / "actionlint", "-no-color", broken).returncode != 0


def test_the_gitlab_pipeline_passes_the_gitlab_ci_schema(tmp_path: Path) -> None:
    checker = BIN / "check-jsonschema"
    checked = _run(checker, "--builtin-schema", "vendor.gitlab-ci", GITLAB)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(GITLAB.read_text().replace("allow_failure: true", "allow_failure: maybe"))
    assert _run(checker, "--builtin-schema", "vendor.gitlab-ci", broken).returncode != 0


def _steps_called() -> set[str]:
    texts = [p.read_text() for p in [*WORKFLOWS, GITLAB]]
    return {m for t in texts for m in re.findall(r"(?:run: |- )ci/patchring-ci\.sh (\w+)", t)}


def test_the_templates_call_steps_the_script_has() -> None:
    script = (CI / "patchring-ci.sh").read_text()
    known = set(re.findall(r"^  (\w+)\)$", script, re.MULTILINE))
    assert _steps_called() == {"validate", "plan", "verify", "rollout"}
    assert _steps_called() <= known
    rollout = yaml.safe_load(WORKFLOWS[1].read_text())
    steps = rollout["jobs"]["rollout"]["steps"]
    env = next(s["env"] for s in steps if s.get("run") == "ci/patchring-ci.sh rollout")
    assert env["PATCHRING_LEDGER"] == "${{ secrets.PATCHRING_LEDGER_URL }}"
    gitlab = yaml.safe_load(GITLAB.read_text())
    assert gitlab["verify"]["artifacts"]["reports"]["junit"] == "patchring-out/junit.xml"


def _scratch_repo(dest: Path) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    _run("git", "init", "-q", cwd=dest)
    _run("git", "add", "-A", cwd=dest)
    return dest


def test_the_pre_commit_hooks_pass_on_the_example_and_fail_on_a_broken_policy(
    tmp_path: Path,
) -> None:
    repo = _scratch_repo(tmp_path / "repo")
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
    }
    try_repo = (BIN / "pre-commit", "try-repo", PROJECT)
    passed = _run(*try_repo, "--all-files", cwd=repo, env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"patchring validate\.+Passed", passed.stdout), passed.stdout
    assert re.search(r"patchring schema for editors\.+Passed", passed.stdout), passed.stdout
    assert json.loads((repo / ".patchring" / "policy.schema.json").read_text()) == (
        policy_json_schema()
    )
    policy = repo / "policies" / "hardening.yml"
    policy.write_text(policy.read_text().replace("\nsysctl:", "\nsysctlz:", 1))
    _run("git", "add", "-A", cwd=repo)
    failed = _run(*try_repo, "patchring-validate", "--all-files", cwd=repo, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"patchring validate\.+Failed", failed.stdout), failed.stdout
    located = re.search(r"policies/hardening\.yml:7:1: error: unknown key 'sysctlz'", failed.stdout)
    assert located, failed.stdout


def test_the_validate_step_turns_located_errors_into_github_annotations(tmp_path: Path) -> None:
    repo = _scratch_repo(tmp_path / "repo")
    policy = repo / "policies" / "hardening.yml"
    policy.write_text(policy.read_text().replace("\nsysctl:", "\nsysctlz:", 1))
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_ACTIONS": "true",
        "PATCHRING": f"{sys.executable} -m orchestrator",
        "PATCHRING_REPO": str(repo),
        "PATCHRING_OUT": str(tmp_path / "out"),
    }
    step = _run("bash", CI / "patchring-ci.sh", "validate", cwd=PROJECT, env=env)
    assert step.returncode == 1
    assert "policies/hardening.yml:7:1: error: unknown key 'sysctlz'" in step.stderr
    assert step.stdout.startswith(
        "::error file=policies/hardening.yml,line=7,col=1::unknown key 'sysctlz'"
    ), step.stdout


def test_schema_write_puts_the_schema_where_editors_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["schema", "--write"]) == 0
    written = tmp_path / ".patchring" / "policy.schema.json"
    assert json.loads(written.read_text()) == policy_json_schema()
    assert main(["schema", "--write"]) == 0
    assert "unchanged .patchring/policy.schema.json" in capsys.readouterr().err
    assert main(["schema", "--write", "editor/x.json"]) == 0
    assert (tmp_path / "editor" / "x.json").read_text() == written.read_text()
    readme = (PROJECT / "README.md").read_text()
    assert "# yaml-language-server: $schema=../.patchring/policy.schema.json" in readme


OFFLINE_HOSTS = """\
ssh: {user: root, identity_file: /nonexistent/id, known_hosts: /nonexistent/known_hosts,
      connect_timeout: 2}
vars: {lab_apt_url: "http://127.0.0.1:1/", lab_apt_key: "x"}
hosts:
  lab-01: {address: 127.0.0.1, port: 1, ring: canary}
  lab-02: {address: 127.0.0.1, port: 1, ring: pilot}
"""


def test_the_plan_step_posts_the_impact_of_a_change_without_a_host(tmp_path: Path) -> None:
    repo = _scratch_repo(tmp_path / "repo")
    (repo / "inventory" / "lab.yml").write_text(OFFLINE_HOSTS)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    _run(*git, "add", "-A", cwd=repo)
    _run(*git, "commit", "-qm", "base", cwd=repo)
    fleet = repo / "inventory" / "fleet.yml"
    fleet.write_text(fleet.read_text().replace("  agent_port: 7070\n", "  agent_port: 7072\n", 1))
    _run(*git, "commit", "-qam", "the agent moves to port 7072", cwd=repo)
    summary = tmp_path / "summary.md"
    env = {
        "PATH": "/usr/bin:/bin",
        "PATCHRING": f"{sys.executable} -m orchestrator",
        "PATCHRING_REPO": str(repo),
        "PATCHRING_OUT": str(tmp_path / "out"),
        "PATCHRING_BASE_REF": "HEAD~1",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    step = _run("bash", CI / "patchring-ci.sh", "plan", cwd=PROJECT, env=env)
    assert step.returncode == 0, step.stderr
    assert "changes pending" in step.stdout
    posted = (tmp_path / "out" / "plan.md").read_text()
    assert posted == summary.read_text()
    assert "<details>" in posted and "/etc/acme/agent.conf" in posted
    assert "7072" in posted
