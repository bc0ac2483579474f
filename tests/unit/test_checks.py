"""Verification without hosts: generated checks pinned, batches and probes run by a local shell,
the exported pytest file run on this machine, users' JUnit results mapped back to hosts, and
policy `checks:` entries validated with their locations."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest

from orchestrator.errors import ValidationError
from orchestrator.model.desired import DesiredState, HostTarget, UserCheckFile
from orchestrator.model.policy import (
    Command,
    Deploy,
    Directory,
    File,
    Package,
    Service,
    Sysctl,
    User,
)
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.source import SourceLocation
from orchestrator.verify import checks_for, plan_checks, render_pytest_module
from orchestrator.verify.batch import (
    Answer,
    BatchOutputError,
    build_batch_script,
    parse_batch_output,
)
from orchestrator.verify.checks import CONTROLLER_PROBES, Probe
from orchestrator.verify.probes import PROBES
from orchestrator.verify.usertests import UserRun, plan_user_runs, read_testcase
from tests.unit.builders import desired, reference_state, resource

REFERENCE_CHECKS = [
    ("base/apt_repository:lab/key",
     "apt repository lab: signing key /etc/apt/keyrings/lab.asc is in place",
     "sha256 97f4a137e92669ebe00f2b323f78af978c696cc024aeee45ddc0fd4612f50e21"),
    ("base/apt_repository:lab/sources",
     "apt repository lab: /etc/apt/sources.list.d/lab.list lists http://10.213.0.1:8080/ lab",
     "sha256 7d9618ad9e3f60874901b44685f3c08c47cd10b8d98a26e3f6dd9fe6ea8a6985"),
    ("base/user:acme/present", "user acme exists", "present"),
    ("base/user:acme/home", "user acme has home /var/lib/acme", "/var/lib/acme"),
    ("base/user:acme/shell", "user acme has shell /usr/sbin/nologin", "/usr/sbin/nologin"),
    ("base/directory:/var/lib/acme/present", "directory /var/lib/acme exists", "directory"),
    ("base/directory:/var/lib/acme/owner", "directory /var/lib/acme is owned by root", "root"),
    ("base/directory:/var/lib/acme/group", "directory /var/lib/acme belongs to group root",
     "root"),
    ("base/directory:/var/lib/acme/mode", "directory /var/lib/acme has mode 0755", "0755"),
    ("base/package:acme-agent/installed", "package acme-agent is installed", "installed"),
    ("base/package:acme-agent/version", "package acme-agent is at version 1.0-2", "1.0-2"),
    ("base/package:acme-tool/installed", "package acme-tool is installed", "installed"),
    ("base/package:telnet/absent", "package telnet is not installed", "not installed"),
    ("base/patch:DSA-9001-1/openssl/fixed",
     "DSA-9001-1 (CVE-2026-10001): package openssl is at 3.0.15-1 or later, or not installed",
     ">= 3.0.15-1 or not installed"),
    ("base/file:/etc/acme/agent.conf/present",
     "file /etc/acme/agent.conf exists and is a regular file", "regular file"),
    ("base/file:/etc/acme/agent.conf/content", "file /etc/acme/agent.conf has the expected content",
     "sha256 3e27406089cf46b302f5fe2d751dfcd9485c2821fb207ecbe6fc6dccb3678121"),
    ("base/file:/etc/acme/agent.conf/owner", "file /etc/acme/agent.conf is owned by root", "root"),
    ("base/file:/etc/acme/agent.conf/group", "file /etc/acme/agent.conf belongs to group root",
     "root"),
    ("base/file:/etc/acme/agent.conf/mode", "file /etc/acme/agent.conf has mode 0640", "0640"),
    ("base/file:/etc/acme/agent.conf/restarted:acme-agent.service",
     "service acme-agent.service was restarted after /etc/acme/agent.conf last changed",
     "started after /etc/acme/agent.conf changed"),
    ("base/sysctl:net.ipv4.conf.all.send_redirects/value",
     "sysctl net.ipv4.conf.all.send_redirects = 0", "0"),
    ("base/sysctl:net.ipv4.conf.all.send_redirects/persisted",
     "sysctl net.ipv4.conf.all.send_redirects = 0 is persisted in /etc/sysctl.d/90-patchring.conf",
     "net.ipv4.conf.all.send_redirects = 0"),
    ("base/command:motd/guard", "command motd: /etc/motd.d/acme exists", "exists"),
    ("base/service:acme-agent/running", "service acme-agent is running", "running"),
    ("base/service:acme-agent/enabled", "service acme-agent is enabled at boot", "enabled"),
]  # fmt: skip


def test_every_resource_yields_checks_with_stable_ids_titles_and_expected_values() -> None:
    found = [(c.id, c.title, c.expected) for c in checks_for(reference_state())]
    assert found == REFERENCE_CHECKS
    assert {c.source for c in checks_for(reference_state())} == {"generated"}


def test_variants_of_packages_users_services_and_commands() -> None:
    state = desired(
        Package(name="nginx", version="1.22.1-9", hold=True),
        Package(name="curl", state="latest"),
        User(name="app", uid=1500, group="app", groups=("adm", "www-data")),
        User(name="olduser", present=False),
        Service(name="telnetd", running=False, enabled=False),
        Command(name="seed", run="seed-db", unless="test -s /var/lib/db/seeded"),
        Deploy(name="motd", use="motd:configure_motd"),
    )
    found = {c.spec.id: (c.probe, c.subject, c.want, c.spec.expected) for c in plan_checks(state)}
    assert found == {
        "base/user:app/present": ("user.present", "app", "", "present"),
        "base/user:app/uid": ("user.uid", "app", "1500", "1500"),
        "base/user:app/group": ("user.group", "app", "app", "app"),
        "base/user:app/groups": ("user.groups", "app", "adm,www-data", "member of adm,www-data"),
        "base/user:app/home_exists": ("user.home_exists", "/home/app", "", "directory"),
        "base/user:olduser/absent": ("user.absent", "olduser", "", "absent"),
        "base/package:nginx/installed": ("package.installed", "nginx", "", "installed"),
        "base/package:nginx/version": ("package.version", "nginx", "1.22.1-9", "1.22.1-9"),
        "base/package:nginx/held": ("package.held", "nginx", "", "hold"),
        "base/package:curl/installed": ("package.installed", "curl", "", "installed"),
        "base/package:curl/latest": ("package.latest", "curl", "", "the candidate version"),
        "base/command:seed/guard": (
            "command.unless", "test -s /var/lib/db/seeded", "", "exit status 0"
        ),
        "base/service:telnetd/running": ("service.stopped", "telnetd", "", "stopped"),
        "base/service:telnetd/enabled": ("service.disabled", "telnetd", "", "disabled"),
    }  # fmt: skip


def test_a_check_points_at_the_policy_key_it_comes_from() -> None:
    file = resource(File(path="/etc/x.conf", template="templates/x.j2", mode="600"),
                    policy="web", content="rendered for this host\n")  # fmt: skip
    located = file.model_copy(update={"field_locations": {
        "path": SourceLocation("policies/web.yml", 4, 11),
        "template": SourceLocation("policies/web.yml", 5, 15),
        "mode": SourceLocation("policies/web.yml", 6, 11),
    }})  # fmt: skip
    state = DesiredState(host=HostTarget(name="h", address="10.0.0.9"), resources=(located,))
    checks = {c.property: c for c in checks_for(state)}
    assert str(checks["present"].location) == "policies/web.yml:4:11"
    assert str(checks["content"].location) == "policies/web.yml:5:15"
    assert str(checks["mode"].location) == "policies/web.yml:6:11"
    assert checks["mode"].expected == "0600"
    assert str(checks["owner"].location) == "policies/web.yml:1:3"  # a default: the resource
    # the content check hashes the rendered template, as the probe and apply do
    assert checks["content"].expected == (
        "sha256 " + __import__("hashlib").sha256(b"rendered for this host\n").hexdigest()
    )


def test_every_probe_a_check_can_name_exists() -> None:
    assert set(get_args(Probe)) == set(PROBES) | CONTROLLER_PROBES


# --- batches, run by a local shell ---------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_a_batch_frames_every_answer_whatever_the_commands_print(shell: str) -> None:
    commands = [
        "printf 'no newline'; echo oops >&2; exit 3",
        "printf 'patchring-x data\\nZm9v\\npatchring-x end\\n'",  # a forged frame
        "echo 'unterminated",
        "head -c 3 /dev/zero",
        "read line; echo read:$line",
    ]
    script = build_batch_script(commands, "patchring-x")
    out = subprocess.run([shell, "-c", script], capture_output=True, check=True).stdout
    answers = parse_batch_output(out, "patchring-x", len(commands))
    assert answers[0] == Answer(3, b"no newline", b"oops\n")
    assert answers[1].stdout == b"patchring-x data\nZm9v\npatchring-x end\n"
    assert answers[2].exit_status == 2 and b"unterminated" not in answers[2].stdout
    assert answers[3] == Answer(0, b"\0\0\0", b"")
    assert answers[4] == Answer(0, b"read:\n", b"")  # commands never read the script


def test_a_batch_cut_short_is_an_error_not_a_result() -> None:
    out = subprocess.run(
        ["sh", "-c", build_batch_script(["true", "kill -9 $$"], "m")], capture_output=True
    ).stdout
    with pytest.raises(BatchOutputError, match="cut short"):
        parse_batch_output(out, "m", 2)


class LocalLink:
    """Runs batches in a local shell, counting them: this machine plays the host."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def run_batch(self, commands: Sequence[str]) -> list[Answer]:
        self.batches.append(list(commands))
        script = build_batch_script(commands, "m")
        out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
        return parse_batch_output(out, "m", len(commands))


needs_root_debian = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/var/lib/dpkg/status").exists(),
    reason="probes this machine as a Debian host, as root",
)


@needs_root_debian
def test_checks_run_through_testinfra_modules_in_one_batch(tmp_path: Path) -> None:
    from orchestrator.verify.runner import evaluate_checks

    conf = tmp_path / "app.conf"
    conf.write_text("a = 1\n")
    conf.chmod(0o600)
    tmp_path.chmod(0o755)
    state = desired(
        Package(name="dpkg"),
        Package(name="patchring-no-such-package", state="absent"),
        File(path=str(conf), content="a = 1\n", mode="0640"),
        Directory(path=str(tmp_path)),
        User(name="root", home="/root"),
        Sysctl(key="net.ipv4.ip_forward", value="0" if _ip_forward() == "0" else "1"),
        Command(name="c", run="true", creates=str(conf)),
    )
    link = LocalLink()
    outcomes = {o.check.spec.id: o.result(str) for o in evaluate_checks(plan_checks(state), link)}
    assert len(link.batches) == 1, link.batches  # discovery found every command up front
    failed = {i: (r.expected, r.actual) for i, r in outcomes.items() if r.status != "passed"}
    assert failed == {
        f"base/file:{conf}/mode": ("0640", "0600"),
        "base/sysctl:net.ipv4.ip_forward/persisted": (
            "net.ipv4.ip_forward = " + _ip_forward(),
            "/etc/sysctl.d/90-patchring.conf missing",
        ),
    }
    mode = outcomes[f"base/file:{conf}/mode"]
    assert [(e.command, e.exit_status, e.stdout) for e in mode.evidence] == [
        (f"stat -Lc %a {conf}", 0, "600\n")
    ]
    absent = outcomes["base/package:patchring-no-such-package/absent"]
    assert absent.evidence[0].command == "dpkg-query -f '${Status}' -W patchring-no-such-package"
    assert absent.evidence[0].exit_status == 1


def _ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


@needs_root_debian
def test_without_good_guesses_more_batches_give_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.verify import runner

    state = desired(
        Package(name="dpkg"),
        User(name="root", shell="/bin/zsh"),
        File(path=str(tmp_path / "missing.conf"), content="x\n"),
        Sysctl(key="net.ipv4.ip_forward", value=_ip_forward()),
    )

    def verify() -> tuple[list[tuple[str, str, str, list[str]]], LocalLink]:
        link = LocalLink()
        outcomes = [o.result(str) for o in runner.evaluate_checks(plan_checks(state), link)]
        found = [(r.check_id, r.status, r.actual, [e.command for e in r.evidence])
                 for r in outcomes]  # fmt: skip
        return found, link

    guessed, link = verify()
    assert len(link.batches) == 1
    assert ("base/user:root/shell", "failed", "/bin/bash", ["getent passwd root"]) in guessed
    monkeypatch.setattr(runner, "DISCOVERY_GUESSES", {})  # testinfra's first answers branch
    unguessed, link = verify()
    assert unguessed == guessed
    assert len(link.batches) >= 2
    monkeypatch.setattr(runner, "MAX_BATCHES", 1)  # then the rest runs one command at a time
    live, link = verify()
    assert live == guessed
    assert len(link.batches) > 2 and {len(b) for b in link.batches[1:]} == {1}


@needs_root_debian
def test_a_probe_that_raises_is_that_checks_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.verify import probes, runner

    def broken(host: object, subject: str, want: str) -> probes.ProbeResult:
        raise RuntimeError(f"cannot tell about {subject}")

    monkeypatch.setitem(runner.PROBES, "path.directory", broken)
    tmp_path.chmod(0o755)
    outcomes = runner.evaluate_checks(
        plan_checks(desired(Directory(path=str(tmp_path)))), LocalLink()
    )
    results = {o.check.spec.property: o.result(str) for o in outcomes}
    assert (results["present"].status, results["present"].message) == (
        "error",
        f"RuntimeError: cannot tell about {tmp_path}",
    )
    assert results["mode"].status == "passed"


# --- the exported pytest file --------------------------------------------------------------------


@needs_root_debian
def test_the_exported_file_runs_the_same_checks_with_plain_pytest(tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("a = 1\n")
    conf.chmod(0o644)
    state = desired(
        Package(name="dpkg"),
        File(path=str(conf), content="a = 1\n"),
        File(path=str(tmp_path / "missing.conf"), content="x\n"),
    )
    text = render_pytest_module({"local": plan_checks(state), "elsewhere": ()})
    compile(text, "generated.py", "exec")
    assert "from orchestrator" not in text
    (tmp_path / "test_generated.py").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "test_generated.py", "--hosts=local://", "-q",
         "-p", "no:cacheprovider", "-rf"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert "5 failed, 6 passed" in proc.stdout, proc.stdout
    assert (
        f"base/file:{tmp_path}/missing.conf/present: expected regular file, got missing"
        in proc.stdout
    )


# --- users' testinfra files -----------------------------------------------------------------------

JUNIT = """<testsuites><testsuite>
<testcase classname="" name="checks.test_bad" file="checks/test_bad.py">
  <error message="collection failure">Traceback
E     File "/tmp/run/checks/test_bad.py", line 1
E   SyntaxError: expected ':'</error></testcase>
<testcase classname="checks.test_agent" name="test_ok[ssh://10.0.0.2]" file="checks/test_agent.py">
  <system-out>--- Captured Log ---
RUN CommandResult(backend=&lt;testinfra.backend.ssh.SshBackend object at 0x1&gt;, exit_status=0, command=b"ssh -F cfg 10.0.0.2 'test -e /usr/bin/acme'", _stdout=b'', _stderr=b'')
</system-out></testcase>
<testcase classname="checks.test_agent" name="test_moon[ssh://10.0.0.1]" file="checks/test_agent.py">
  <failure message="AssertionError: assert False">text</failure></testcase>
<testcase classname="checks.test_agent" name="test_boom[ssh://10.0.0.1]" file="checks/test_agent.py">
  <failure message="RuntimeError: ssh exited 255">E   RuntimeError: ssh exited 255</failure></testcase>
<testcase classname="checks.test_agent.TestK" name="test_p[ssh://web-1.lan-b]" file="checks/test_agent.py"/>
<testcase classname="checks.test_agent" name="test_local" file="checks/test_agent.py"/>
<testcase classname="checks.test_agent" name="test_later[ssh://10.0.0.1]" file="checks/test_agent.py"><skipped/></testcase>
</testsuite></testsuites>"""  # noqa: E501


def test_junit_results_are_mapped_back_to_hosts_and_policies() -> None:
    def file(path: str) -> UserCheckFile:
        return UserCheckFile(path=path, policy="agent", location=SourceLocation("p.yml", 3, 5))

    run = UserRun(
        hosts={"10.0.0.1": "web-01", "10.0.0.2": "web-02", "web-1.lan": "web-03"},
        files={"checks/test_bad.py": (file("checks/test_bad.py"),),
               "checks/test_agent.py": (file("checks/test_agent.py"),)},
        timeout=60,
    )  # fmt: skip
    found = [
        (host, r.check_id.removeprefix("agent/checks/"), r.status, r.actual)
        for case in ET.fromstring(JUNIT).iter("testcase")
        for host, r in read_testcase(case, run, "/tmp/run/", str)
    ]
    syntax = "File \"checks/test_bad.py\", line 1\nSyntaxError: expected ':'"
    assert found == [
        ("web-01", "test_bad.py", "error", syntax),
        ("web-02", "test_bad.py", "error", syntax),
        ("web-03", "test_bad.py", "error", syntax),
        ("web-02", "test_agent.py::test_ok", "passed", "passed"),
        ("web-01", "test_agent.py::test_moon", "failed", "AssertionError: assert False"),
        ("web-01", "test_agent.py::test_boom", "error", "RuntimeError: ssh exited 255"),
        ("web-03", "test_agent.py::TestK::test_p[b]", "passed", "passed"),
        ("web-01", "test_agent.py::test_local", "passed", "passed"),
        ("web-02", "test_agent.py::test_local", "passed", "passed"),
        ("web-03", "test_agent.py::test_local", "passed", "passed"),
    ]  # fmt: skip
    cases = list(ET.fromstring(JUNIT).iter("testcase"))
    ((_, ok),) = read_testcase(cases[1], run, "/tmp/run/", str)
    assert [(e.command, e.exit_status) for e in ok.evidence] == [("test -e /usr/bin/acme", 0)]
    assert ok.source == "user" and ok.policy == "agent"


def test_hosts_needing_the_same_files_share_one_pytest_run() -> None:
    def host(name: str, address: str, *files: tuple[str, str]) -> DesiredState:
        checks = tuple(
            UserCheckFile(path=path, policy=policy, location=SourceLocation("p.yml"))
            for policy, path in files
        )
        return DesiredState(
            host=HostTarget(name=name, address=address), resources=(), user_checks=checks
        )

    fleet = {
        "a": host("a", "10.0.0.1", ("base", "checks/test_base.py")),
        "b": host("b", "10.0.0.2", ("base", "checks/test_base.py"), ("web", "checks/test_web.py")),
        "c": host("c", "10.0.0.3", ("base", "checks/test_base.py"), ("web", "checks/test_web.py")),
        "d": host("d", "10.0.0.4"),
    }
    runs = [(r.hosts, list(r.files)) for r in plan_user_runs(fleet)]
    assert runs == [
        ({"10.0.0.1": "a", "10.0.0.2": "b", "10.0.0.3": "c"}, ["checks/test_base.py"]),
        ({"10.0.0.2": "b", "10.0.0.3": "c"}, ["checks/test_web.py"]),
    ]


# --- `checks:` in policies ------------------------------------------------------------------------


def _project(tmp_path: Path, checks: list[str]) -> Path:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(
        "hosts:\n  web-01: {address: 10.0.0.1, groups: [web]}\n  db-01: {address: 10.0.0.2}\n"
    )
    (tmp_path / "policies").mkdir()
    listed = "".join(f"  - {c}\n" for c in checks)
    (tmp_path / "policies" / "web.yml").write_text(
        f"name: web\nselect: {{groups: [web]}}\nchecks:\n{listed}"
    )
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_web.py").write_text("def test_x(host):\n    pass\n")
    return tmp_path


def test_policy_check_files_reach_the_desired_state_of_the_hosts_selected(tmp_path: Path) -> None:
    project = load_project(WorktreeSource(_project(tmp_path, ["./checks/test_web.py"])))
    (check,) = project.desired["web-01"].user_checks
    assert (check.path, check.policy, str(check.location)) == (
        "checks/test_web.py",
        "web",
        "policies/web.yml:4:5",
    )
    assert check.content == "def test_x(host):\n    pass\n"
    assert project.desired["db-01"].user_checks == ()


def test_a_missing_check_file_is_a_located_error(tmp_path: Path) -> None:
    root = _project(
        tmp_path, ["checks/test_web.py", "checks/test_gone.py", "checks/notes.txt", "../x.py"]
    )
    with pytest.raises(ValidationError) as caught:
        load_project(WorktreeSource(root))
    assert [str(d) for d in caught.value.diagnostics] == [
        "policies/web.yml:5:5: error: check file 'checks/test_gone.py' not found",
        "policies/web.yml:6:5: error: check file 'checks/notes.txt' is not a Python file "
        "(a pytest-testinfra test file)",
        "policies/web.yml:7:5: error: check file '../x.py' leaves the repository "
        "('..' is not allowed)",
    ]


class _Replies:
    """A testinfra host stand-in that answers `run` from a table of fixed outputs."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def run(self, command: str, *args: str) -> SimpleNamespace:
        line = command % args if args else command
        return SimpleNamespace(stdout=self.replies.get(line, ""), rc=0)


@pytest.mark.parametrize(
    ("started", "passed"),
    [("Mon 2026-03-02 10:00:06.000001 UTC", True), ("Mon 2026-03-02 10:00:04.500000 UTC", False)],
)
def test_a_restart_lost_after_a_file_change_fails_with_both_times(
    started: str, passed: bool
) -> None:
    from orchestrator.verify.probes import service_restarted

    show = "systemctl show -p ActiveState -p ActiveEnterTimestamp --timestamp=us+utc web.service"
    host = _Replies(
        {
            show: f"ActiveState=active\nActiveEnterTimestamp={started}\n",
            "date -u -r /etc/web.conf '+%s.%N'": "1772445605.000000000\n",  # 10:00:05 UTC
        }
    )
    ok, actual = service_restarted(host, "web.service", "/etc/web.conf")
    assert ok is passed
    assert "/etc/web.conf changed 2026-03-02 10:00:05.000000 UTC" in actual
    assert actual.endswith("a restart was lost") is not passed
