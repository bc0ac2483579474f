"""Groups, users and a persisted sysctl on two real hosts: converge, change, verify, idempotency.

A group with a fixed gid and a user in it with exactly the supplementary groups the policy lists
and a password hash from a secret inventory variable (named so nothing about it looks secret:
the `password:` field makes it secret); a sysctl persisted in a file the policy names. The hash
never shows in `plan --json`, apply's output or any file patchring writes. A change of the
value is made in place: the file holds exactly one line for the key afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import Lab
from tests.integration.fleet import CliResult, commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

FIRST_HASH = (
    "$6$Fq0jx2Lm$zxnzNN5l0gaw1GCi9PehsvfPTUtSCgCiTxsoz6hkNVJ.nQDro/MuqqVdT48N79cWyuMwRulRnKJPdb"
    "qDC2wMw0"
)
SECOND_HASH = (
    "$6$Ab9Kt3Wq$yW8PsoHcQw8wV9zXvU1PiOlLTnq9Dd7wRaFh5XAa/TI/A1KKO78Zu/ah8oizRrZcmqBd988/MmFxSqq"
    "n.XMYW1"
)
KEY = "net.ipv4.tcp_keepalive_time"  # per network namespace: the machine's own stays untouched
SYSCTL_FILE = "/etc/sysctl.d/60-net-tuning.conf"


def _policy(hosts: list[str], keepalive: int) -> dict:
    return {
        "name": "accounts",
        "select": {"hosts": hosts},
        "sysctl_file": SYSCTL_FILE,
        "sysctl": [{"key": KEY, "value": keepalive}],
        "groups": [{"name": "deployers", "gid": 2345}, {"name": "auditors", "gid": 2346}],
        "users": [
            {
                "name": "deploy",
                "uid": 2345,
                "group": "deployers",
                "groups": ["auditors", "adm"],
                "groups_mode": "exact",
                "shell": "/bin/bash",
                "password": "{{ deploy_login }}",
            }
        ],
    }


def _write(repo: Path, hosts: list[str], keepalive: int, login_hash: str) -> None:
    write_yaml(repo / "policies" / "accounts.yml", _policy(hosts, keepalive))
    write_yaml(repo / "inventory" / "accounts.yml", {"vars": {"deploy_login": login_hash}})
    commit(repo, "accounts")


def _ok(result: CliResult, *codes: int) -> CliResult:
    assert result.code in (codes or (0,)), result.stdout + result.stderr
    return result


def _changes(result: CliResult, name: str) -> dict[str, dict]:
    entry = next(h for h in result.json()["hosts"] if h["host"] == name)
    return {c["resource_id"]: c for c in entry["changes"]}


def _written(repo: Path) -> str:
    return "".join(
        p.read_bytes().decode(errors="replace") for p in (repo / ".patchring").rglob("*")
        if p.is_file()
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3})
    for example in (repo / "policies").iterdir():  # only this test's policy: two hosts
        example.unlink()
    shutil.rmtree(repo / "templates")
    return repo


def test_groups_users_and_a_named_sysctl_file_converge_mask_and_change_in_place(
    repo: Path, lab: Lab
) -> None:
    hosts = lab.hosts[:2]
    first = hosts[0]
    only = [arg for name in hosts for arg in ("--host", name)]
    try:
        _write(repo, hosts, 600, FIRST_HASH)
        plan = _ok(patchring(repo, "plan", "--json", "--detailed-exitcode", *only), 2)
        assert FIRST_HASH not in plan.stdout + plan.stderr
        changes = _changes(plan, first)
        assert (
            changes["group:deployers"]["summary"] == "group deployers (absent) -> created, gid 2345"
        )
        assert changes["user:deploy"]["summary"] == "user deploy (absent) -> created"
        persist = changes[f"sysctl:{KEY}"]
        assert persist["summary"] == f"{KEY} 7200 -> 600"
        assert f"+++ {SYSCTL_FILE}\n" in persist["diff"] and f"+{KEY} = 600\n" in persist["diff"]
        order = list(changes)
        assert order.index("group:deployers") < order.index("user:deploy")

        applied = _ok(patchring(repo, "apply", "--json", *only))
        assert {h["status"] for h in applied.json()["hosts"]} == {"changed"}
        assert FIRST_HASH not in applied.stdout + applied.stderr

        # Behind our back: an extra group, which `groups_mode: exact` takes away again.
        lab.exec(first, "usermod", "-a", "-G", "users", "deploy")
        _write(repo, hosts, 900, SECOND_HASH)
        plan = _ok(patchring(repo, "plan", "--json", "--detailed-exitcode", *only), 2)
        text = plan.stdout + plan.stderr
        assert FIRST_HASH not in text and SECOND_HASH not in text
        changes = _changes(plan, first)
        assert changes["user:deploy"]["summary"] == (
            "user deploy: groups adm,auditors,users -> auditors,adm (exactly), password changed"
        )
        assert changes[f"sysctl:{KEY}"]["diff"] == (
            f"--- {SYSCTL_FILE} (current)\n+++ {SYSCTL_FILE}\n@@ -1 +1 @@\n"
            f"-{KEY} = 600\n+{KEY} = 900\n"
        )
        applied = _ok(patchring(repo, "apply", "--json", *only))
        assert SECOND_HASH not in applied.stdout + applied.stderr

        for name in hosts:
            h = host(lab.address(name), lab.ssh_config)
            assert h.group("deployers").gid == 2345
            user = h.user("deploy")
            assert (user.uid, user.group) == (2345, "deployers")
            assert sorted(user.groups) == ["adm", "auditors", "deployers"]
            assert h.run("getent shadow deploy").stdout.split(":")[1] == SECOND_HASH
            assert h.file("/home/deploy").is_directory  # create_home: true for a normal user
            lines = h.file(SYSCTL_FILE).content_string.splitlines()
            assert [line for line in lines if line.startswith(KEY)] == [f"{KEY} = 900"]
            assert h.run(f"sysctl -n {KEY}").stdout.strip() == "900"

        verified = _ok(patchring(repo, "verify", "--json", *only))
        results = [c for v in verified.json()["verify"] for c in v["results"]]
        ids = {c["check_id"] for c in results}
        for wanted in (
            "accounts/group:deployers/gid",
            "accounts/user:deploy/groups",
            "accounts/user:deploy/password",
            "accounts/user:deploy/home_exists",
            f"accounts/sysctl:{KEY}/persisted",
        ):
            assert wanted in ids
        assert {c["status"] for c in results} == {"passed"}
        assert SECOND_HASH not in verified.stdout

        again = _ok(patchring(repo, "apply", "--json", *only))
        assert {h["status"] for h in again.json()["hosts"]} == {"unchanged"}
        _ok(patchring(repo, "plan", "--detailed-exitcode", *only))
        written = _written(repo)
        assert written and FIRST_HASH not in written and SECOND_HASH not in written
    finally:
        lab.reset(hosts)
