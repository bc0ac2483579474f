"""No secret in any output: every command, text and JSON, every file patchring writes.

A policy renders five secret variables into a file on every host: one secret by name
(`app_db_password`), one tagged `!secret`, one `!env`, one `!file`, one listed in the
inventory's `secret_vars`. Then every command runs (validate, explain, plan, apply, verify with
a user check that prints the file, rollout, a halted rollout, rollback, status, report in every
format), and every stdout and stderr, every file under `.patchring/` (records, the four
renderings, the SQLite ledger's bytes) and the crash-log folder is searched for each secret in
every spelling an output could give it (raw, JSON-escaped, HTML/XML-escaped). None is found,
while the hosts really hold the secrets.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import CliResult, break_canary, commit, make_repo, write_yaml

pytestmark = pytest.mark.integration

SECRETS = {
    "name": "name-secret-Zq81xv",
    "tag": 'tag-secret-<&>"-Kw72',  # characters every escaping changes
    "env": "env-secret-Hy55rc",
    "file": "file-secret-Pm40dd",
    "listed": "listed-secret-Vb93nt",
}
ENV_NAME = "PATCHRING_TEST_APP_TOKEN"
POLICY = f"""\
name: app-secrets
select: {{all: true}}
vars:
  app_db_password: {SECRETS["name"]}
  app_banner: !secret '{SECRETS["tag"]}'
  app_api: !env {ENV_NAME}
  app_cert_pin: !file secrets/app_pin
  app_listed: {SECRETS["listed"]}
files:
  - path: /etc/app/secret.conf
    template: templates/secret.conf.j2
    mode: "0600"
"""
TEMPLATE = """\
password = {{ app_db_password }}
banner = {{ app_banner }}
api = {{ app_api }}
pin = {{ app_cert_pin }}
listed = {{ app_listed }}
"""
# A user check that fails and so puts the file's text into its message and evidence.
USER_CHECK = """\
def test_secret_file_is_empty(host):
    text = host.run("cat /etc/app/secret.conf").stdout
    assert text == "", text
"""


def spellings(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, False)}


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    repo = make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )
    (repo / "policies" / "app-secrets.yml").write_text(POLICY)
    (repo / "templates" / "secret.conf.j2").write_text(TEMPLATE)
    (repo / "secrets").mkdir()
    (repo / "secrets" / "app_pin").write_text(SECRETS["file"] + "\n")
    fleet = repo / "inventory" / "fleet.yml"
    data = yaml.safe_load(fleet.read_text())
    data["secret_vars"] = ["app_listed"]
    write_yaml(fleet, data)
    commit(repo, "a policy with secrets")
    return repo


class Runner:
    """Runs the real command with the secret in its environment; keeps every output."""

    def __init__(self, repo: Path, state: Path) -> None:
        self.repo = repo
        self.env = {**os.environ, ENV_NAME: SECRETS["env"], "XDG_STATE_HOME": str(state)}
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str, expect: int = 0) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        name = " ".join(args)
        self.outputs += [(f"{name} (stdout)", proc.stdout), (f"{name} (stderr)", proc.stderr)]
        assert proc.returncode == expect, (name, proc.returncode, proc.stdout, proc.stderr)
        # GitPython's processes outliving gevent's hub used to print finalizer tracebacks.
        assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, name
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_no_command_and_no_file_shows_a_secret(repo: Path, lab: Lab, tmp_path: Path) -> None:
    run = Runner(repo, tmp_path / "state")
    canary, pilot = lab.ring("canary")[0], lab.ring("pilot")[0]

    assert run("validate").stdout.startswith("OK: 5 policies")
    explained = run("explain", canary)
    assert "app_db_password" in explained.stdout and "********" in explained.stdout
    run("explain", canary, "--json")

    plan = run("plan")
    assert "content changed (diff hidden: contains a secret)" in plan.stdout
    assert "password =" not in plan.stdout  # the file's lines are hidden, not just masked
    plan_json = run("plan", "--json").json()
    diffs = [
        c["diff"]
        for h in plan_json["hosts"]
        for c in h["changes"]
        if c["resource_id"] == "file:/etc/app/secret.conf"
    ]
    assert len(diffs) == len(lab.hosts) and all("diff hidden" in d for d in diffs)

    applied = run("apply", "--host", canary, "--host", pilot)  # both hosts, not only the last
    assert canary in applied.stdout and pilot in applied.stdout
    assert "2 hosts: 2 changed" in applied.stdout
    run("apply", "--json")
    on_host = lab.exec(canary, "cat", "/etc/app/secret.conf")
    assert all(secret in on_host for secret in SECRETS.values())  # the hosts do hold them

    # A changed template: the old lines (with secrets) would show in a plain diff.
    (repo / "templates" / "secret.conf.j2").write_text(TEMPLATE + "extra = 1\n")
    assert "diff hidden" in run("plan").stdout
    subprocess.run(["git", "checkout", "templates/secret.conf.j2"], cwd=repo, check=True)

    (repo / "checks").mkdir()
    (repo / "checks" / "test_secret.py").write_text(USER_CHECK)
    (repo / "policies" / "secret-check.yml").write_text(
        "name: secret-check\nselect: {all: true}\nchecks: [checks/test_secret.py]\n"
    )
    verified = run("verify", "--host", canary, expect=3)
    assert "test_secret_file_is_empty" in verified.stdout
    record = run("verify", "--json", expect=3).json()
    user = [c for v in record["verify"] for c in v["results"] if c["source"] == "user"]
    assert user and all(c["status"] == "failed" for c in user)
    assert any("********" in c["message"] for c in user)
    (repo / "policies" / "secret-check.yml").unlink()

    assert "canary" in run("rollout", "--to", "canary").stdout
    done = run("rollout", "--json").json()
    assert [r["status"] for r in done["rings"]][-1] == "passed"
    run("status")
    run("status", "--json")

    break_canary(repo)  # a broken update halts the next rollout in canary, then roll it back
    commit(repo, "acme-agent 1.0-3 for canary")
    run("rollout", "--json", expect=3)
    run("rollback")

    for fmt in ("markdown", "html", "junit", "json"):
        run("report", "--format", fmt)
    run("report", done["id"], "--format", "html", "-o", str(repo / ".patchring" / "r.html"))

    written = [p for p in (repo / ".patchring").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "ledger.db" for p in written)
    assert len([p for p in written if p.suffix == ".html"]) >= 5
    leaks = [
        (where, kind)
        for kind, secret in SECRETS.items()
        for spelling in spellings(secret)
        for where, text in run.outputs
        if spelling in text
    ]
    leaks += [
        (str(path), kind)
        for kind, secret in SECRETS.items()
        for spelling in spellings(secret)
        for path in written
        if spelling.encode() in path.read_bytes()
    ]
    assert leaks == []
