"""The command line without hosts: exit codes, located errors on stderr, no tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli.main import main

PROJECT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = """\
ssh: {user: root, identity_file: /nonexistent/id, known_hosts: /nonexistent/known_hosts}
vars:
  lab_apt_url: "http://10.213.0.1:8080/"
  lab_apt_key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\\nx\\n-----END PGP PUBLIC KEY BLOCK-----\\n"
hosts:
  lab-01: {address: 10.213.0.11, ring: canary, groups: [lab, web]}
  lab-02: {address: 10.213.0.12, ring: pilot, groups: [lab, db]}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(
            PROJECT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("lab.yml")
        )
    (tmp_path / "inventory" / "lab.yml").write_text(LAB_INVENTORY)
    return tmp_path


def test_validate_ok(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--repo", str(repo)]) == 0
    assert capsys.readouterr().out == "OK: 4 policies, 2 hosts, 30 resources resolved, no errors\n"


def test_broken_policy_is_exit_1_with_every_error_located(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "policies" / "web.yml").write_text(
        "name: web\nselect: {all: true}\npackages:\n  - name: nginx\n    verison: '1.2'\n"
        "services:\n  - name: nginx\n    running: maybe\n"
    )
    assert main(["validate", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "policies/web.yml:5:5: error: unknown key 'verison' (did you mean 'version'?)",
        "policies/web.yml:8:14: error: 'maybe' is not a boolean",
        "patchring: 2 errors found; nothing was changed",
    ]


def test_unknown_host_is_exit_1_with_a_suggestion(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--repo", str(repo), "--host", "lab-1"]) == 1
    assert "unknown host 'lab-1' (did you mean" in capsys.readouterr().err


def test_bad_flag_is_exit_1_not_argparse_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--bogus"]) == 1
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_explain_names_the_origin_of_each_value(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "lab-02", "--repo", str(repo), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "patchring.explain/v1"
    port = next(v for v in doc["vars"] if v["name"] == "agent_port")
    assert (port["value"], port["location"]["file"]) == ("7071", "inventory/fleet.yml")


def test_schema_is_generated_from_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "packages" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_internal_error_writes_a_crash_log(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import orchestrator.cli.commands as commands

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(commands, "load", boom)
    assert main(["validate", "--repo", str(repo)]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err
    log = next((tmp_path / "state" / "patchring").glob("patchring-crash-*.log"))
    assert "RuntimeError: boom" in log.read_text()


def test_report_for_a_run_that_does_not_exist(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "20260101T000000Z-apply-dead", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "no run '20260101T000000Z-apply-dead'" in err
    assert "Traceback" not in err


def test_unwritable_history_stops_before_any_host_is_touched(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".patchring").write_text("a file where the history folder should be\n")
    assert main(["verify", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("patchring: error: ")
    assert ".patchring" in err
    assert "Traceback" not in err


def test_the_package_license_is_an_spdx_expression() -> None:
    """The table form (`{ text = ... }`) makes every install print setuptools deprecations."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
