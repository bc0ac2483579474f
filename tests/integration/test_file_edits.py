"""Partial edits of files a package owns, on two real hosts: login.defs settings, an
sshd_config setting, an INI setting (journald.conf), a line and a managed block. The plan shows
the real diff of each edit, apply converges, the generated checks pass, a second apply changes
nothing, and every byte outside the edits is as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.policy import WorktreeSource, load_project
from orchestrator.verify import verify_hosts
from tests.integration.conftest import Lab
from tests.integration.fleet import make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

POLICY = {
    "name": "edits",
    "select": {"all": True},
    "settings": [
        {"path": "/etc/login.defs", "format": "space", "key": "PASS_MAX_DAYS", "value": 90},
        {"path": "/etc/login.defs", "format": "space", "key": "UMASK", "value": "027"},
        {"path": "/etc/ssh/sshd_config", "format": "space", "key": "ClientAliveInterval",
         "value": 120},
        {"path": "/etc/systemd/journald.conf", "format": "ini", "section": "Journal",
         "key": "SystemMaxUse", "value": "50M"},
    ],
    "lines": [
        {"path": "/etc/login.defs", "match": "^#?LOG_OK_LOGINS", "line": "LOG_OK_LOGINS yes"},
    ],
    "blocks": [
        {"path": "/etc/bash.bashrc", "name": "umask", "content": "umask 027\n"},
    ],
}  # fmt: skip
FILES = (
    "/etc/login.defs",
    "/etc/ssh/sshd_config",
    "/etc/systemd/journald.conf",
    "/etc/bash.bashrc",
)


def _edited(old: dict[str, str]) -> dict[str, str]:
    """What the files must become: exactly these lines changed or added, nothing else."""
    login = old["/etc/login.defs"]
    login = login.replace("\nPASS_MAX_DAYS\t99999\n", "\nPASS_MAX_DAYS\t90\n")
    login = login.replace("\nUMASK\t\t022\n", "\nUMASK\t\t027\n")
    login = login.replace("\nLOG_OK_LOGINS\t\tno\n", "\nLOG_OK_LOGINS yes\n")
    sshd = old["/etc/ssh/sshd_config"].replace(
        "\n#ClientAliveInterval 0\n", "\n#ClientAliveInterval 0\nClientAliveInterval 120\n"
    )
    journald = old["/etc/systemd/journald.conf"].replace(
        "\n#SystemMaxUse=\n", "\n#SystemMaxUse=\nSystemMaxUse=50M\n"
    )
    bashrc = old["/etc/bash.bashrc"] + "# BEGIN patchring umask\numask 027\n# END patchring umask\n"
    return {
        "/etc/login.defs": login,
        "/etc/ssh/sshd_config": sshd,
        "/etc/systemd/journald.conf": journald,
        "/etc/bash.bashrc": bashrc,
    }


def _read(lab: Lab, name: str) -> tuple[dict[str, str], dict[str, str]]:
    contents = {path: lab.exec(name, "cat", path) for path in FILES}
    stats = {path: lab.exec(name, "stat", "-c", "%U:%G %a", path) for path in FILES}
    return contents, stats


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    dest = make_repo(tmp_path / "repo", lab.inventory, ssh={"command_timeout": 90})
    shutil.rmtree(dest / "policies")
    write_yaml(dest / "policies" / "edits.yml", POLICY)
    return dest


def test_edits_plan_their_diff_converge_verify_and_leave_the_rest(repo: Path, lab: Lab) -> None:
    hosts = lab.hosts[:2]
    lab.reset(hosts)  # earlier tests apply the example, which edits login.defs too
    limit = [arg for name in hosts for arg in ("--host", name)]
    before = {name: _read(lab, name) for name in hosts}
    for contents, _ in before.values():
        assert "\nPASS_MAX_DAYS\t99999\n" in contents["/etc/login.defs"]  # the Debian default
    try:
        plan = patchring(repo, "plan", "--json", *limit)
        assert plan.code == 0, plan.stderr
        entry = next(h for h in plan.json()["hosts"] if h["host"] == hosts[0])
        assert entry["status"] == "drifted", entry
        changes = {c["resource_id"]: c for c in entry["changes"]}
        assert set(changes) == {
            "setting:/etc/login.defs:PASS_MAX_DAYS",
            "setting:/etc/login.defs:UMASK",
            "setting:/etc/ssh/sshd_config:ClientAliveInterval",
            "setting:/etc/systemd/journald.conf:[Journal]SystemMaxUse",
            "line:/etc/login.defs:^#?LOG_OK_LOGINS",
            "block:/etc/bash.bashrc:umask",
        }
        days = changes["setting:/etc/login.defs:PASS_MAX_DAYS"]
        assert days["summary"] == "/etc/login.defs: PASS_MAX_DAYS = 90"
        assert "\n-PASS_MAX_DAYS\t99999\n+PASS_MAX_DAYS\t90\n" in days["diff"]
        assert "UMASK" not in days["diff"]  # the diff of just that change
        journal = changes["setting:/etc/systemd/journald.conf:[Journal]SystemMaxUse"]["diff"]
        assert "\n #SystemMaxUse=\n+SystemMaxUse=50M\n" in journal

        applied = patchring(repo, "apply", "--json", *limit)
        assert applied.code == 0, applied.stdout + applied.stderr
        results = {h["host"]: h for h in applied.json()["hosts"]}
        assert {results[name]["status"] for name in hosts} == {"changed"}
        for name in hosts:
            old, old_stats = before[name]
            contents, stats = _read(lab, name)
            assert contents == _edited(old)  # byte for byte outside the edits
            assert stats == old_stats  # owner, group and mode kept

        fleet = load_project(WorktreeSource(repo)).desired
        verified = verify_hosts({name: fleet[name] for name in hosts})
        for verification in verified.values():
            assert verification.status == "passed", [
                (r.check_id, r.actual) for r in verification.results if r.status != "passed"
            ]
            ids = {r.check_id for r in verification.results}
            assert "edits/setting:/etc/login.defs:UMASK/value" in ids
            assert "edits/block:/etc/bash.bashrc:umask/content" in ids

        again = patchring(repo, "apply", "--json", *limit)
        assert again.code == 0
        second = {h["host"]: h for h in again.json()["hosts"]}
        assert {second[name]["status"] for name in hosts} == {"unchanged"}
        assert {second[name]["remote_commands"] for name in hosts} == {1}  # the probe alone

        # Changed behind our back: only that setting differs, and the check says which line.
        lab.exec(hosts[1], "sed", "-i", "s/^UMASK\t\t027$/UMASK\t\t002/", "/etc/login.defs")
        (drifted,) = verify_hosts({hosts[1]: fleet[hosts[1]]}).values()
        failed = {r.check_id: r.actual for r in drifted.results if r.status != "passed"}
        assert list(failed) == ["edits/setting:/etc/login.defs:UMASK/value"]
        assert failed["edits/setting:/etc/login.defs:UMASK/value"].endswith("'UMASK\\t\\t002'")
    finally:
        lab.reset(hosts)
