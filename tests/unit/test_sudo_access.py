"""Inventory `ssh:` at every level and sudo: layering, located errors, the password's masking,
and the commands a sudo host runs."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.errors import ValidationError
from orchestrator.inventory import load_inventory
from orchestrator.model.desired import HostTarget
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.policy.resolve import host_target
from orchestrator.policy.secretvars import project_secrets
from orchestrator.secrets import Masker
from orchestrator.sudo import sudo_command, sudo_input, sudo_refusal

LAYERED = """\
ssh: {user: root, port: 22, connect_timeout: 5, sudo_password_env: TOP_PW}
groups:
  web: {ssh: {user: web, port: 2201}}
  db: {ssh: {user: db, sudo: true}}
rings:
  - {name: canary, ssh: {port: 2202, identity_file: keys/canary}}
hosts:
  plain: {address: 10.0.0.1}
  grouped: {address: 10.0.0.2, groups: [web, db]}
  ringed: {address: 10.0.0.3, ring: canary, groups: [web]}
  own: {address: 10.0.0.4, ring: canary, groups: [db], ssh: {user: deploy, sudo_user: app, sudo_password_file: pw}}
"""  # noqa: E501


def repo(tmp_path: Path, text: str, environment: dict[str, str] | None = None) -> WorktreeSource:
    (tmp_path / "inventory").mkdir(exist_ok=True)
    (tmp_path / "inventory" / "fleet.yml").write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path, environment or {})


def targets(source: WorktreeSource) -> dict[str, HostTarget]:
    inventory = load_inventory(source)
    return {name: host_target(inventory, host) for name, host in inventory.hosts.items()}


def problems(source: WorktreeSource) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_inventory(source)
    return [str(d) for d in caught.value.diagnostics]


def test_host_wins_then_ring_then_groups_in_order_then_all(tmp_path: Path) -> None:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "pw").write_text("file-secret\n")
    found = targets(repo(tmp_path, LAYERED, {"TOP_PW": "env-secret"}))
    assert (found["plain"].user, found["plain"].port, found["plain"].sudo) == ("root", 22, False)
    assert found["plain"].connect_timeout == 5
    # groups in the host's order, the later one winning for the keys it sets
    grouped = found["grouped"]
    assert (grouped.user, grouped.port, grouped.sudo) == ("db", 2201, True)
    assert grouped.sudo_password == SecretStr("env-secret")
    assert grouped.sudo_password_source == "env:TOP_PW"
    ringed = found["ringed"]
    assert (ringed.user, ringed.port) == ("web", 2202)
    assert ringed.identity_file == str(tmp_path / "inventory" / "keys" / "canary")
    own = found["own"]
    assert (own.user, own.port, own.sudo, own.sudo_user) == ("deploy", 2202, True, "app")
    # the host's file replaces the env var set at the top
    assert own.sudo_password is not None
    assert own.sudo_password.get_secret_value() == "file-secret"
    assert own.sudo_password_source == f"file:{tmp_path / 'inventory' / 'pw'}"


def test_the_password_never_shows_in_a_target_dump(tmp_path: Path) -> None:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "pw").write_text("file-secret\n")
    own = targets(repo(tmp_path, LAYERED, {"TOP_PW": "env-secret"}))["own"]
    assert "file-secret" not in own.model_dump_json() + repr(own)


def test_sudo_passwords_join_the_project_secrets(tmp_path: Path) -> None:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "pw").write_text("file-secret\n")
    inventory = load_inventory(repo(tmp_path, LAYERED, {"TOP_PW": "env-secret"}))
    secrets = project_secrets([], inventory)
    assert {"env-secret", "file-secret"} <= secrets
    assert Masker(secrets)("sudo said env-secret") == "sudo said ********"


def test_bad_sudo_settings_are_located_errors(tmp_path: Path) -> None:
    text = """\
ssh: {sudo: yes please, sudo_user: "-oProxy", sudo_password_env: "1BAD"}
groups:
  web: {ssh: {sudo_password: hunter22}}
hosts:
  a: {address: 10.0.0.1, ssh: {sudo_password_env: PW, sudo_password_file: /pw}}
  b: {address: 10.0.0.2, ssh: {port: 0}}
"""
    assert problems(repo(tmp_path, text)) == [
        "inventory/fleet.yml:1:13: error: 'yes please' is not a boolean",
        "inventory/fleet.yml:1:36: error: '-oProxy' is not a valid user or group name (letters, "
        "digits, _ . -; starting with a letter or _; at most 32 characters)",
        "inventory/fleet.yml:1:66: error: '1BAD' is not an environment variable name",
        "inventory/fleet.yml:3:14: error: a sudo password is never written in the inventory; "
        "name where it is read from with sudo_password_env (an environment variable) or "
        "sudo_password_file",
        "inventory/fleet.yml:5:31: error: give sudo_password_env or sudo_password_file, not both",
        "inventory/fleet.yml:6:38: error: must be greater than or equal to 1, got 0",
    ]


def test_unreadable_password_sources_are_located_errors(tmp_path: Path) -> None:
    text = """\
hosts:
  a: {address: 10.0.0.1, ssh: {sudo: true, sudo_password_env: NOT_SET}}
  b: {address: 10.0.0.2, ssh: {sudo: true, sudo_password_file: missing}}
  c: {address: 10.0.0.3, ssh: {sudo: true, sudo_password_env: EMPTY}}
"""
    missing = tmp_path / "inventory" / "missing"
    assert problems(repo(tmp_path, text, {"EMPTY": ""})) == [
        "inventory/fleet.yml:2:63: error: environment variable 'NOT_SET' is not set "
        "(it holds the sudo password)",
        f"inventory/fleet.yml:3:64: error: cannot read the sudo password file '{missing}': "
        "No such file or directory",
        "inventory/fleet.yml:4:63: error: the sudo password in environment variable 'EMPTY' "
        "is empty",
    ]


def target(**settings: object) -> HostTarget:
    return HostTarget.model_validate({"name": "web-1", "address": "10.0.0.1", **settings})


def test_commands_without_sudo_are_unchanged() -> None:
    assert sudo_command("echo hi", target()) == "echo hi"
    assert sudo_input(target(sudo=False, sudo_password="pw12")) is None


def test_sudo_commands_quote_the_script_as_one_argument() -> None:
    script = "echo $(id -u); `x`; a'b\n-oProxyCommand=z"
    plain = sudo_command(script, target(sudo=True))
    assert shlex.split(plain) == ["sudo", "-H", "-n", "--", "sh", "-c", script]
    with_password = sudo_command(script, target(sudo=True, sudo_user="app", sudo_password="pw12"))
    assert shlex.split(with_password) == [
        *("sudo", "-H", "-S", "-k", "-p", "", "-u", "app", "--", "sh", "-c", script)
    ]
    assert "pw12" not in with_password
    assert sudo_input(target(sudo=True, sudo_password="pw12")) == "pw12\n"


def test_sudo_refusals_say_what_to_do() -> None:
    asks = sudo_refusal(target(sudo=True), "sudo: a password is required\n")
    assert asks == (
        "sudo on web-1 asks for a password; set ssh.sudo_password_env (an environment "
        "variable) or ssh.sudo_password_file in the inventory, or allow NOPASSWD for this user"
    )
    wrong = target(sudo=True, sudo_password="pw12", sudo_password_source="env:DEPLOY_PW")
    said = "Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt"
    assert sudo_refusal(wrong, said) == (
        "sudo on web-1 refused the password from env:DEPLOY_PW (incorrect password)"
    )
    assert sudo_refusal(target(sudo=True), "deploy is not in the sudoers file.") == (
        "sudo on web-1 failed: deploy is not in the sudoers file."
    )
    assert sudo_refusal(target(sudo=True), "probe output") is None
