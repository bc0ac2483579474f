"""`plan --base`: the impact of two commits on every host, with no host contacted."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import paramiko
import pytest

from orchestrator.cli.main import main
from orchestrator.drift.impact import compare_fleets, compare_host, compare_resource
from orchestrator.model.policy import Package, Patch, Service
from tests.unit.builders import desired, resource

PROJECT = Path(__file__).resolve().parents[2]
# Ports nothing listens on, on loopback: a connection attempt would fail, and is refused below.
LAB_INVENTORY = """\
ssh: {user: root, identity_file: /nonexistent/id, known_hosts: /nonexistent/known_hosts}
vars:
  lab_apt_url: "http://10.213.0.1:8080/"
  lab_apt_key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\\nx\\n-----END PGP PUBLIC KEY BLOCK-----\\n"
hosts:
  lab-01: {address: 127.0.0.2, port: 9, ring: canary, groups: [lab, web]}
  lab-02: {address: 127.0.0.3, port: 9, ring: pilot, groups: [lab, db]}
  lab-03: {address: 127.0.0.4, port: 9, ring: pilot, groups: [lab, web]}
  lab-04: {address: 127.0.0.5, port: 9, ring: broad, groups: [lab, db]}
"""
CONF = "file:/etc/acme/agent.conf"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: the pilot ring pins acme-agent 1.0-3; the agent template gains a line for
    hosts of the web group."""
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(
            PROJECT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("lab.yml")
        )
    (tmp_path / "inventory" / "lab.yml").write_text(LAB_INVENTORY)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    fleet = tmp_path / "inventory" / "fleet.yml"
    fleet.write_text(
        fleet.read_text().replace(
            "  - name: pilot\n", '  - name: pilot\n    vars: {agent_version: "1.0-3"}\n', 1
        )
    )
    template = tmp_path / "templates" / "agent.conf.j2"
    template.write_text(
        template.read_text() + "{% if 'web' in host.groups %}cache = on\n{% endif %}"
    )
    _git(tmp_path, "commit", "-qam", "pilot gets 1.0-3; web hosts cache")
    return tmp_path


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any connection attempt (a socket or paramiko) fails the test, and is counted."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)
    return attempts


def test_impact_names_exact_hosts_rings_transitions_and_diffs(
    repo: Path, no_connections: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "patchring.impact/v1"
    assert doc["base"] == {"ref": "HEAD~1", "commit": _git(repo, "rev-parse", "HEAD~1")}
    assert doc["head"] == {"ref": "HEAD", "commit": _git(repo, "rev-parse", "HEAD")}
    changed = {h["host"]: {c["resource_id"] for c in h["changes"]} for h in doc["hosts"]}
    assert changed == {
        "lab-01": {CONF},
        "lab-02": {"package:acme-agent"},
        "lab-03": {"package:acme-agent", CONF},
        "lab-04": set(),
    }
    assert doc["summary"] == {
        "hosts": 4,
        "hosts_changed": 3,
        "added": 0,
        "removed": 0,
        "changes": 4,
        "rings_changed": ["canary", "pilot"],
        "advisories_fixed": 0,
        "advisories_reopened": 0,
        "exceptions_changed": 0,
    }
    assert [(r["ring"], r["hosts"], r["changed"]) for r in doc["rings"]] == [
        ("canary", 1, 1),
        ("pilot", 2, 2),
        ("broad", 1, 0),
    ]
    package = next(c for c in doc["changes"] if c["resource_id"] == "package:acme-agent")
    assert (package["actions"], package["summary"], package["hosts"]) == (
        ["upgrade"],
        "acme-agent 1.0-2 -> 1.0-3",
        ["lab-02", "lab-03"],
    )
    conf = {c["hosts"][0]: c["diff"] for c in doc["changes"] if c["resource_id"] == CONF}
    assert conf["lab-01"] == (
        "--- /etc/acme/agent.conf (base)\n+++ /etc/acme/agent.conf (head)\n"
        "@@ -3,3 +3,4 @@\n name = lab-01\n listen = 0.0.0.0:7070\n log_level = warning\n"
        "+cache = on\n"
    )
    assert set(conf) == {"lab-01", "lab-03"}
    assert doc["reboot"]["assessed"] is False
    assert no_connections == []


def test_impact_text_and_markdown_show_each_change_once(
    repo: Path, no_connections: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(
        f"Impact of HEAD~1 ({_git(repo, 'rev-parse', 'HEAD~1')[:12]}) -> HEAD "
        f"({_git(repo, 'rev-parse', 'HEAD')[:12]}): 3 of 4 hosts change (0 added, 0 removed), "
        "4 resource changes; no host was contacted\n"
    )
    assert "  ring pilot        2 hosts    2 changing\n" in text
    assert "  ring broad        1 host     0 changing\n" in text
    assert (
        "  ~ package:acme-agent  [upgrade]  on 2 hosts: lab-02, lab-03\n"
        "      acme-agent 1.0-2 -> 1.0-3\n"
    ) in text
    # The template's change, rendered per host, shown once with the line that varies marked.
    assert f"  ~ {CONF}  [update]  on 2 hosts: lab-01, lab-03\n" in text
    assert "      content: +1 -0 lines\n" in text
    assert "    *  name = lab-01\n" in text
    assert "      +cache = on\n" in text
    assert text.count(f"~ {CONF}") == 1

    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    summary, _, details = markdown.partition("<details>")
    assert summary.startswith("### patchring: 3 of 4 hosts change\n")
    assert "4 resource changes in rings canary, pilot;" in summary
    assert "| pilot | 2 | 2 |\n| broad | 1 | 0 |" in summary
    assert "<summary>2 changes (identical ones shown once)</summary>" in details
    assert (
        "- `package:acme-agent` [upgrade] on 2 hosts (lab-02, lab-03): acme-agent 1.0-2 -> 1.0-3"
    ) in details
    assert "  ```diff\n  --- /etc/acme/agent.conf (base)\n" in details
    assert "  +cache = on\n  ```" in details
    assert details.rstrip().endswith("</details>")
    assert no_connections == []


def test_detailed_exitcode_and_no_change(repo: Path, no_connections: list[object]) -> None:
    args = ["plan", "--repo", str(repo), "--detailed-exitcode"]
    assert main([*args, "--base", "HEAD~1"]) == 2
    assert main([*args, "--base", "HEAD", "--head", "HEAD"]) == 0
    assert no_connections == []


def test_bad_refs_are_exit_1_with_the_flag_named(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--repo", str(repo), "--base", "mian"]) == 1
    assert "patchring: error: --base mian: unknown Git ref 'mian'" in capsys.readouterr().err
    assert main(["plan", "--repo", str(repo), "--base", "HEAD", "--head", "nope"]) == 1
    assert "--head nope: unknown Git ref 'nope'" in capsys.readouterr().err
    assert main(["plan", "--repo", str(repo), "--head", "HEAD"]) == 1
    assert "--head and --live go with --base REF" in capsys.readouterr().err


def test_ring_and_host_filters_choose_the_hosts(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1", "--ring", "pilot", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [h["host"] for h in doc["hosts"]] == ["lab-02", "lab-03"]


# -- the pure comparison ---------------------------------------------------------------------


def test_package_transitions_in_words() -> None:
    def change(old: Package | None, new: Package | None) -> tuple[tuple[str, ...], str] | None:
        result = compare_resource(resource(old) if old else None, resource(new) if new else None)
        return (result.actions, result.summary) if result else None

    pinned = Package(name="nginx", version="1.2-1")
    assert change(pinned, Package(name="nginx", version="1.1-9")) == (
        ("downgrade",),
        "nginx 1.2-1 -> 1.1-9",
    )
    assert change(pinned, Package(name="nginx", state="absent")) == (
        ("remove",),
        "nginx 1.2-1 -> absent",
    )
    assert change(None, pinned) == (("install",), "nginx (not managed) -> 1.2-1")
    assert change(pinned, None) == (
        ("unmanage",),
        "nginx: no longer managed (left at 1.2-1)",
    )
    assert change(pinned, Package(name="nginx", version="1.2-1", hold=True)) == (
        ("hold",),
        "nginx 1.2-1 -> 1.2-1 (hold: false -> true)",
    )
    assert change(pinned, pinned) is None


def test_field_changes_and_advisories_fixed_or_reopened() -> None:
    service = compare_resource(
        resource(Service(name="nginx")), resource(Service(name="nginx", running=False))
    )
    assert service is not None
    assert (service.actions, service.summary) == (("update",), "running: true -> false")
    patch = Patch(advisory="DSA-1-1", cves=("CVE-1",), package="nginx", fixed="1.2-2")
    base, head = desired(Service(name="nginx")), desired(Service(name="nginx"), patch)
    fixed = compare_host("web-01", base, head)
    assert [a.advisory for a in fixed.fixed] == ["DSA-1-1"]
    assert fixed.reopened == ()
    reopened = compare_host("web-01", head, base)
    assert [(a.advisory, a.cves) for a in reopened.reopened] == [("DSA-1-1", ("CVE-1",))]
    gone = compare_fleets({"web-01": head}, {})
    assert gone["web-01"].status == "removed"
    assert {c.actions for c in gone["web-01"].changes} == {("unmanage",)}


EXCEPTIONS = """\
exceptions:
  - id: hold-agent-pilot
    hold: {package: acme-agent, version: "1.0-2"}
    select: {rings: [pilot]}
    owner: dana@example.com
    reason: vendor sign-off pending
    approved_by: lee@example.com
    expires: 2099-01-31
  - id: waive-banner
    waive: ["hardening/*"]
    select: {hosts: [lab-04]}
    owner: sec
    reason: legal review
    approved_by: lee@example.com
    expires: 2099-03-01
"""


def test_exceptions_added_removed_or_extended_are_part_of_the_impact(
    repo: Path, no_connections: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    """A hold added for pilot undoes pilot's upgrade; a waiver extended and one removed are
    listed with their hosts; a change of exceptions alone is a change (exit 2)."""
    (repo / "exceptions").mkdir()
    waiver = EXCEPTIONS[EXCEPTIONS.index("  - id: waive-banner") :]
    accepted = (
        "  - id: accept-old\n    accept: [CVE-2026-10001]\n    select: {all: true}\n"
        "    owner: sec\n    reason: r\n    approved_by: lee@example.com\n"
        "    expires: 2099-01-01\n"
    )
    base = "exceptions:\n" + waiver.replace("2099-03-01", "2099-02-01") + accepted
    (repo / "exceptions" / "q1.yml").write_text(base)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a waiver and an accepted risk")
    (repo / "exceptions" / "q1.yml").write_text(EXCEPTIONS)
    _git(repo, "commit", "-qam", "hold pilot; extend the waiver; drop the accepted risk")
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    changes = {e["id"]: e for e in doc["exceptions"]}
    assert {k: (v["change"], v["hosts"]) for k, v in changes.items()} == {
        "hold-agent-pilot": ("added", ["lab-02", "lab-03"]),
        "waive-banner": ("extended", ["lab-04"]),
        "accept-old": ("removed", ["lab-01", "lab-02", "lab-03", "lab-04"]),
    }
    assert (changes["waive-banner"]["was_expires"], changes["waive-banner"]["expires"]) == (
        "2099-02-01",
        "2099-03-01",
    )
    pilot = {h["host"]: h["changes"] for h in doc["hosts"]}["lab-02"]
    assert [c["summary"] for c in pilot if c["resource_id"] == "package:acme-agent"] == [
        "acme-agent 1.0-3 -> 1.0-2"
    ]
    assert doc["summary"]["exceptions_changed"] == 3
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1"]) == 0
    text = capsys.readouterr().out
    assert (
        "  + hold-agent-pilot (hold: acme-agent held at 1.0-2) until 2099-01-31, owner "
        "dana@example.com, on 2 hosts: lab-02, lab-03" in text
    )
    assert "  ~ waive-banner extended: (waive: hardening/*) expiry 2099-02-01 -> 2099-03-01" in text
    assert main(["plan", "--repo", str(repo), "--base", "HEAD~1", "--format", "markdown"]) == 0
    assert "**Exceptions**" in capsys.readouterr().out
    assert no_connections == []
