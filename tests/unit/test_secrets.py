"""Secrets: the masker's rules, the YAML tags that mark values secret, `secret_vars`, and the
commands that need no host (validate, explain) keeping every secret out of their output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import ValidationError
from orchestrator.inventory import select_hosts
from orchestrator.model.results import HostPlan, ResourceOutcome
from orchestrator.policy import WorktreeSource, load_project, parse_yaml
from orchestrator.policy.secretvars import source_references
from orchestrator.secrets import HIDDEN_DIFF, MASK, Masker, is_public_key, looks_secret

PROJECT = Path(__file__).resolve().parents[2]
PUBLIC_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQINBGVsb2x\n-----END PGP PUBLIC KEY BLOCK-----"


# --- the masker ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "db_pass",
        "db_passwd",
        "mysql_password",
        "api_key",
        "ssh_key",
        "sshKey",
        "key_material",
        "deploy_keys",
        "jwt",
        "jwt_signing",
        "private_pem",
        "aws_credential",
        "vault_token",
        "client_secret",
        "basic_auth",
        "SMTP_PWD",
        "web-01:agent_token",
    ],
)
def test_names_that_look_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["keyboard_layout", "author", "compass_heading", "monkey", "port", "tokenizer-01:port"]
)
def test_names_that_only_contain_the_letters(name: str) -> None:
    assert not looks_secret(name)


def test_public_keys_are_recognised() -> None:
    assert is_public_key(PUBLIC_KEY)
    assert is_public_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB user@host")
    assert not is_public_key("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n")


def test_long_secrets_are_masked_anywhere_short_ones_only_as_whole_values() -> None:
    masker = Masker({"hunter2-long", "42"})
    assert masker("pw=hunter2-long; answer 42") == f"pw={MASK}; answer 42"
    assert masker.value({"pin": "42", "port": "4242", "note": "x hunter2-long"}) == {
        "pin": MASK,
        "port": "4242",
        "note": f"x {MASK}",
    }


def test_multi_line_secrets_are_masked_line_by_line() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH"
    diff_line = "+b3BlbnNzaC1rZXktdjE"
    assert Masker({key})(diff_line) == f"+{MASK}"


def test_a_diff_that_shows_a_secret_is_hidden_whole() -> None:
    masker = Masker({"s3cr3t-value"})
    outcome = ResourceOutcome(
        resource_id="file:/etc/app.conf",
        policy="app",
        status="changed",
        summary="/etc/app.conf: content changed",
        diff="--- a\n+++ b\n-password = old\n+password = s3cr3t-value\n",
    )
    plan = {"web-01": HostPlan(host="web-01", status="drifted")}
    masked = masker.value((outcome, plan))
    assert masked[0].diff == HIDDEN_DIFF
    assert masked[0].summary == outcome.summary
    assert masked[1] == plan  # nothing to mask: the same value comes back
    harmless = outcome.model_copy(update={"diff": "-a\n+b\n"})
    assert masker.value(harmless).diff == "-a\n+b\n"


def test_a_masker_learns_more_secrets() -> None:
    masker = Masker({"first-secret"}).extended({"second-secret"})
    assert masker("first-secret second-secret") == f"{MASK} {MASK}"


# --- marking values secret in YAML ---------------------------------------------------------------


def _tagged(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> object:
    source = WorktreeSource(tmp_path, environment=env or {})
    return parse_yaml(text, "inventory/x.yml", "inventory", source_references(source))


def test_secret_env_and_file_tags(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db").write_text("file-secret-1\n")
    located = _tagged(
        "vars:\n  a: !secret tagged-secret\n  b: !env DB_TOKEN\n  c: !file secrets/db\n"
        "  d: plain\n  e: !secret {user: app, pw: nested-secret}\n",
        tmp_path,
        {"DB_TOKEN": "env-secret-1"},
    )
    assert located.data == {  # type: ignore[attr-defined]
        "vars": {
            "a": "tagged-secret",
            "b": "env-secret-1",
            "c": "file-secret-1",  # trailing newline dropped
            "d": "plain",
            "e": {"user": "app", "pw": "nested-secret"},
        }
    }
    assert located.is_secret(("vars", "e", "pw"))  # type: ignore[attr-defined]
    assert not located.is_secret(("vars", "d"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vars:\n  a: !env MISSING\n", "environment variable 'MISSING' is not set"),
        ("vars:\n  a: !env 'no way'\n", "'!env no way': not an environment variable name"),
        ("vars:\n  a: !file ../outside\n", "'!file ../outside': '../outside' leaves the repo"),
        ("vars:\n  a: !file /etc/passwd\n", "'!file /etc/passwd': '/etc/passwd' is an absolute"),
        ("vars:\n  a: !file nothing\n", "'!file nothing': file not found"),
        ("vars:\n  a: !file pipe\n", "'!file pipe': cannot read it: not a regular file"),
        ("vars:\n  a: !env\n", "'!env' needs a variable name, e.g. '!env DB_PASSWORD'"),
    ],
)
def test_env_and_file_problems_are_located(tmp_path: Path, text: str, message: str) -> None:
    os.mkfifo(tmp_path / "pipe")  # reading a FIFO would hang: it must be refused, not opened
    with pytest.raises(ValidationError) as caught:
        _tagged(text, tmp_path)
    got = str(caught.value.diagnostics[0])
    assert got.startswith(f"inventory/x.yml:2:6: error: {message}"), got


def test_a_file_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("not yours")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link").symlink_to(outside)
    with pytest.raises(ValidationError) as caught:
        _tagged("vars:\n  a: !file link\n", repo)
    assert "points outside the repository" in str(caught.value.diagnostics[0])


# --- a project with secrets ----------------------------------------------------------------------

INVENTORY = """\
ssh: {user: root, identity_file: /nonexistent/id, known_hosts: /nonexistent/known_hosts}
secret_vars: [agent_port_secret]
vars:
  lab_apt_url: "http://10.213.0.1:8080/"
  lab_apt_key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\\nmQINBGVsb2x\\n-----END PGP PUBLIC KEY-----"
  db_password: name-secret-1
  agent_log_level: !secret tag-secret-1
  agent_port_secret: listed-secret-1
  agent_token: !env AGENT_TOKEN_FOR_TEST
  pin: !secret "42"
hosts:
  lab-01: {address: 10.213.0.11, ring: canary, groups: [lab, web]}
"""
SECRETS = ("name-secret-1", "tag-secret-1", "listed-secret-1", "env-secret-1")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(
            PROJECT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("lab.yml")
        )
    (tmp_path / "inventory" / "fleet.yml").write_text(
        (PROJECT / "inventory" / "fleet.yml").read_text().replace("agent_log_level: info", "")
    )
    (tmp_path / "inventory" / "lab.yml").write_text(INVENTORY)
    (tmp_path / "templates" / "agent.conf.j2").write_text(
        "log_level = {{ agent_log_level }}\npw = {{ db_password }}\ntoken = {{ agent_token }}\n"
        "listed = {{ agent_port_secret }}\n"
    )
    monkeypatch.setenv("AGENT_TOKEN_FOR_TEST", "env-secret-1")
    return tmp_path


def test_project_secrets_come_from_tags_lists_and_names(repo: Path) -> None:
    project = load_project(WorktreeSource(repo))
    assert set(SECRETS) | {"42"} <= project.secrets
    assert not any("PGP PUBLIC KEY" in s for s in project.secrets)  # a public key is shown


def test_explain_masks_every_secret_in_text_and_json(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "lab-01", "--repo", str(repo)]) == 0
    text = capsys.readouterr().out
    assert main(["explain", "lab-01", "--repo", str(repo), "--json"]) == 0
    doc = capsys.readouterr().out
    for secret in SECRETS:
        assert secret not in text and secret not in doc
    pin = next(v for v in json.loads(doc)["vars"] if v["name"] == "pin")
    assert pin["value"] == MASK  # a short secret is masked where it is the whole value
    assert "agent_log_level" in text and MASK in text
    assert "BEGIN PGP PUBLIC KEY BLOCK" in text  # the apt key stays readable


def test_validation_errors_do_not_quote_secrets(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "policies" / "other.yml").write_text(
        "name: other\nselect: {all: true}\nvars: {db_password: other-secret-2}\n"
    )
    (repo / "policies" / "third.yml").write_text(
        "name: third\nselect: {all: true}\nvars: {db_password: third-secret-3}\n"
    )
    (repo / "inventory" / "lab.yml").write_text(
        INVENTORY.replace("  db_password: name-secret-1\n", "")
    )
    assert main(["validate", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "conflicts with default" in err
    assert "other-secret-2" not in err and "third-secret-3" not in err


def test_tags_outside_vars_and_unknown_secret_vars_are_errors(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "policies" / "bad.yml").write_text(
        "name: bad\nselect: {all: true}\nfiles:\n  - path: /etc/x\n    content: !secret hidden\n"
    )
    text = INVENTORY.replace("secret_vars: [agent_port_secret]", "secret_vars: [db_pasword]")
    (repo / "inventory" / "lab.yml").write_text(text)
    assert main(["validate", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        "inventory/lab.yml:2:15: error: secret_vars names 'db_pasword', which no policy or "
        "inventory sets (did you mean 'db_password'?)"
    ) in err
    assert (
        "policies/bad.yml:5:14: error: '!secret', '!env' and '!file' are allowed only on a "
        "value under 'vars:'; set a variable and use it with {{ name }}"
    ) in err


# --- repeated --host -----------------------------------------------------------------------------


def test_every_host_named_is_selected_in_inventory_order(repo: Path) -> None:
    inventory = load_project(WorktreeSource(repo)).inventory
    hosts = {
        **inventory.hosts,
        "lab-02": inventory.hosts["lab-01"].model_copy(update={"name": "lab-02"}),
    }
    inventory = inventory.model_copy(update={"hosts": hosts})
    assert select_hosts(inventory, hosts=["lab-02", "lab-01"]) == ("lab-01", "lab-02")
    assert select_hosts(inventory, hosts=["lab-02"]) == ("lab-02",)
