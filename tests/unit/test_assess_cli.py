"""`patchring assess` without hosts: bad flags and bad `patching:`/`security_data:` inventory
entries are exit 1 with located errors, before or without touching a host; a host that refuses
the connection (loopback) is exit 3 with its reason."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from orchestrator.cli.main import main

INVENTORY = """\
ssh: {user: root, connect_timeout: 2}
hosts:
  h1: {address: 127.0.0.1, port: PORT, ring: canary}
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "inventory").mkdir()
    inventory = INVENTORY.replace("PORT", str(_closed_port()))
    (tmp_path / "inventory" / "hosts.yml").write_text(inventory)
    return tmp_path


def _patching(repo: Path, text: str) -> None:
    (repo / "inventory" / "patching.yml").write_text(text)


def _assess(repo: Path, *flags: str) -> int:
    return main(["assess", "--repo", str(repo), *flags])


def test_an_unknown_flag_is_exit_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _assess(repo, "--refersh") == 1
    assert "unrecognized arguments: --refersh" in capsys.readouterr().err


def test_a_missing_security_data_file_is_located(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _patching(repo, "security_data: data/tracker.json\n")
    assert _assess(repo) == 1
    assert capsys.readouterr().err.splitlines() == [
        "inventory/patching.yml:1:16: error: security_data: 'data/tracker.json' does not exist",
        "patchring: 1 error found; nothing was changed",
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../tracker.json", "'../tracker.json' leaves the repository ('..' is not allowed)"),
        ("/etc/passwd", "'/etc/passwd' is an absolute path; use a path inside the repository"),
    ],
)
def test_a_security_data_path_outside_the_repo_fails_validate(
    repo: Path, capsys: pytest.CaptureFixture[str], path: str, message: str
) -> None:
    _patching(repo, f"security_data: '{path}'\n")
    assert main(["validate", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"inventory/patching.yml:1:16: error: security_data: {message}"


def test_security_data_must_be_a_regular_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "data").mkdir()
    os.mkfifo(repo / "data" / "fifo.json")  # reading a FIFO would hang the command
    _patching(repo, "security_data: data/fifo.json\n")
    assert _assess(repo) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "inventory/patching.yml:1:16: error: security_data: 'data/fifo.json' cannot be read: "
        "not a regular file (a FIFO)"
    )
    _patching(repo, "security_data: data\n")
    assert _assess(repo) == 1
    assert "'data' is a directory" in capsys.readouterr().err


def test_a_bad_origin_pattern_is_located(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _patching(repo, "patching:\n  security_origins:\n    - 'l=Debian-Security'\n    - 'x=lab'\n")
    assert main(["validate", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err.splitlines()[0]
    assert err.startswith("inventory/patching.yml:4:7: error: ")
    assert "unknown key 'x'" in err


def test_patching_set_in_two_files_names_both(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _patching(repo, "patching: {security_origins: ['l=A']}\n")
    (repo / "inventory" / "zz.yml").write_text("patching: {security_origins: ['l=B']}\n")
    assert main(["validate", "--repo", str(repo)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "inventory/zz.yml:1:1: error: duplicate patching section "
        "(first defined at inventory/patching.yml:1:1)"
    )


def test_invalid_tracker_json_is_located_in_its_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "tracker.json").write_text('{"acme-agent": {"CVE-2026-1": {"releases": {\n  oops}}}}')
    _patching(repo, "security_data: tracker.json\n")
    assert _assess(repo) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("tracker.json:2:3: error: invalid JSON")


def test_an_unreachable_host_is_exit_3_with_its_reason(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _assess(repo, "--json") == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "patchring.assess/v1"
    host = doc["hosts"][0]
    assert host["status"] == "unreachable"
    assert "unreachable" in host["error"]
    assert doc["summary"]["unreachable"] == 1


def test_assess_writes_a_run_record_that_report_renders(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _assess(repo, "--json") == 3
    doc = json.loads(capsys.readouterr().out)
    runs = repo / ".patchring" / "runs"
    record = json.loads((runs / f"{doc['run']}.json").read_text())
    assert (record["schema"], record["kind"], record["status"]) == (
        "patchring.run/v1",
        "assess",
        "failed",
    )
    [host] = record["patching"]["hosts"]
    assert (host["host"], host["ring"], host["status"]) == ("h1", "canary", "unreachable")
    assert sorted(p.name.removeprefix(doc["run"]) for p in runs.iterdir()) == [
        ".html",
        ".json",
        ".junit.xml",
        ".md",
    ]
    assert main(["report", "--repo", str(repo), doc["run"]]) == 0
    markdown = capsys.readouterr().out
    assert "Assess: 0 of 0 hosts with security updates pending; 1 not assessed" in markdown
    assert "- `h1` unreachable: unreachable" in markdown


def test_bad_input_leaves_no_run_history(repo: Path) -> None:
    _patching(repo, "security_data: data/missing.json\n")
    assert _assess(repo) == 1
    assert not (repo / ".patchring").exists()
