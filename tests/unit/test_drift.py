"""The probe script (run by a real local shell) and the comparison (pure)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from orchestrator.drift.changes import diff_host
from orchestrator.drift.expected import PENDING_RESTART_DIR
from orchestrator.drift.observed import (
    Observation,
    ObservedPackage,
    ObservedPath,
    ObservedService,
)
from orchestrator.drift.probe import ProbeOutputError, build_probe_script, parse_probe_output
from orchestrator.model.policy import (
    Command,
    Directory,
    File,
    Package,
    Patch,
    Service,
    Sysctl,
    User,
)
from tests.unit.builders import desired


def _run_locally(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_probe_reads_files_directories_packages_and_commands(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    same = tmp_path / "same.conf"
    same.write_text("x = 1\n")
    same.chmod(0o640)
    other = tmp_path / "other.conf"
    other.write_text("x = 2\n")
    state = desired(
        File(path=str(same), content="x = 1\n", mode="0640", owner="root", group="root"),
        File(path=str(other), content="x = 1\n"),
        File(path=str(tmp_path / "missing.conf"), content="new\n"),
        Directory(path=str(tmp_path)),
        Package(name="dpkg"),
        Package(name="patchring-no-such-package"),
        Command(name="done", run="true", creates=str(same)),
        Command(name="todo", run="true", unless="false"),
    )
    observed = parse_probe_output(_run_locally(build_probe_script(state)))
    changes = {c.resource_id: c for c in diff_host(state, observed)}
    assert f"file:{same}" not in changes
    assert changes[f"file:{other}"].actions == ("update",)
    assert "-x = 2\n+x = 1\n" in changes[f"file:{other}"].diff
    assert changes[f"file:{tmp_path}/missing.conf"].actions == ("create",)
    assert observed.packages["dpkg"].installed
    assert changes["package:patchring-no-such-package"].summary == (
        "patchring-no-such-package (absent) -> installed"
    )
    assert "package:dpkg" not in changes
    assert observed.commands_satisfied == {"done": True, "todo": False}
    assert list(changes) == [
        "package:patchring-no-such-package",
        f"file:{other}",
        f"file:{tmp_path}/missing.conf",
        "command:todo",
    ]


def test_probe_output_cut_short_is_an_error() -> None:
    with pytest.raises(ProbeOutputError, match="cut short"):
        parse_probe_output("patchring-probe 1\npkg\tx\t1\tinstall ok installed\n")
    with pytest.raises(ProbeOutputError, match="header"):
        parse_probe_output("bash: sh: not found\n")


def _observed(**packages: tuple[str, str]) -> Observation:
    return Observation(
        packages={
            name: ObservedPackage(name=name, version=version, status=status)
            for name, (version, status) in packages.items()
        }
    )


@pytest.mark.parametrize(
    ("spec", "seen", "summary", "actions"),
    [
        (
            Package(name="a", version="1.0-2"),
            ("1.0-1", "install ok installed"),
            "a 1.0-1 -> 1.0-2",
            ("upgrade",),
        ),
        (
            Package(name="a", version="1.0-1"),
            ("1.0-2", "install ok installed"),
            "a 1.0-2 -> 1.0-1",
            ("downgrade",),
        ),
        (
            Package(name="a", version="1:1.0-1"),
            ("2.0-1", "install ok installed"),
            "a 2.0-1 -> 1:1.0-1",
            ("upgrade",),
        ),
        (
            Package(name="a", version="1.0-2"),
            ("1.0-3", "install ok half-configured"),
            "a 1.0-3 (half-configured) -> 1.0-2",
            ("reinstall",),
        ),
        (
            Package(name="a", state="absent"),
            ("1.0-1", "install ok installed"),
            "a 1.0-1 -> absent",
            ("remove",),
        ),
        (
            Package(name="a", version="1.0-1", hold=True),
            ("1.0-1", "install ok installed"),
            "a 1.0-1: hold",
            ("hold",),
        ),
    ],
)
def test_package_transitions(
    spec: Package, seen: tuple[str, str], summary: str, actions: tuple[str, ...]
) -> None:
    (change,) = diff_host(desired(spec), _observed(a=seen))
    assert (change.summary, change.actions) == (summary, actions)


def test_package_in_sync_and_held_is_no_change() -> None:
    spec = Package(name="a", version="1.0-1", hold=True)
    assert diff_host(desired(spec), _observed(a=("1.0-1", "hold ok installed"))) == ()


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ("1.0-1", "openssl 1.0-1 -> 1.0-2 (DSA-1)"),
        ("1.0-2", None),
        ("1.0-10", None),
        ("1.0-2~deb12u1", "openssl 1.0-2~deb12u1 -> 1.0-2 (DSA-1)"),
        (None, None),
    ],
)
def test_patch_uses_debian_version_ordering(installed: str | None, expected: str | None) -> None:
    state = desired(Patch(advisory="DSA-1", package="openssl", fixed="1.0-2"))
    seen = _observed(openssl=(installed, "install ok installed")) if installed else Observation()
    changes = diff_host(state, seen)
    assert [c.summary for c in changes] == ([expected] if expected else [])


def test_service_states() -> None:
    state = desired(Service(name="web"), Service(name="old", running=False, enabled=False))
    seen = Observation(
        services={
            "web.service": ObservedService(
                name="web.service",
                load_state="loaded",
                active_state="failed",
                unit_file_state="disabled",
            ),
            "old.service": ObservedService(
                name="old.service",
                load_state="loaded",
                active_state="inactive",
                unit_file_state="disabled",
            ),
        }
    )
    (change,) = diff_host(state, seen)
    assert change.summary == "web: start (now failed), enable at boot (now disabled)"
    assert change.actions == ("start", "enable")


def test_sysctl_and_user() -> None:
    from orchestrator.drift.observed import ObservedSysctl, ObservedUser

    state = desired(
        Sysctl(key="net.ipv4.ip_forward", value=0),
        User(name="acme", shell="/usr/sbin/nologin", groups=("adm",)),
    )
    seen = Observation(
        sysctls={"net.ipv4.ip_forward": ObservedSysctl(key="net.ipv4.ip_forward", value="1")},
        users={
            "acme": ObservedUser(
                name="acme",
                exists=True,
                uid=999,
                group="acme",
                groups=("acme",),
                home="/",
                shell="/bin/sh",
                home_exists=True,
            )
        },
    )
    summaries = [c.summary for c in diff_host(state, seen)]
    assert summaries == [
        "user acme: shell /bin/sh -> /usr/sbin/nologin, groups acme -> adm",
        "net.ipv4.ip_forward 1 -> 0",
    ]


def test_a_file_that_changes_makes_its_restart_due_and_a_marker_keeps_it_due() -> None:
    state = desired(
        File(path="/etc/a.conf", content="a\n", restart=("web",)),
        File(path="/etc/b.conf", content="b\n", restart=("web", "cache.service")),
    )
    in_sync = {
        path: ObservedPath(
            path=path,
            kind="file",
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            owner="root",
            group="root",
            mode="644",
        )
        for path, text in (("/etc/a.conf", "a\n"), ("/etc/b.conf", "b\n"))
    }
    assert diff_host(state, Observation(paths=in_sync)) == ()

    changed = {**in_sync, "/etc/a.conf": in_sync["/etc/a.conf"].model_copy(update={"sha256": "0"})}
    changes = {c.resource_id: c for c in diff_host(state, Observation(paths=changed))}
    assert list(changes) == ["file:/etc/a.conf", "restart:web.service"]
    assert changes["restart:web.service"].actions == ("restart",)
    assert changes["restart:web.service"].summary == "web.service: restart (/etc/a.conf changes)"

    marked = Observation(
        paths=in_sync, pending_restarts={"cache.service": "2026-01-02T03:04:05Z x"}
    )
    (pending,) = diff_host(state, marked)
    assert pending.resource_id == "restart:cache.service"
    assert pending.summary == (
        "cache.service: restart (pending since an earlier apply: 2026-01-02T03:04:05Z x)"
    )


def test_the_probe_reads_pending_restart_markers_in_the_same_command(tmp_path: Path) -> None:
    state = desired(
        File(path=str(tmp_path / "a.conf"), content="a\n", restart=("web", "db")),
    )
    folder = tmp_path / "pending"
    folder.mkdir()
    (folder / "web.service").write_text("2026-01-02T03:04:05Z /etc/a.conf changed\n")
    script = build_probe_script(state).replace(PENDING_RESTART_DIR, str(folder))
    observed = parse_probe_output(_run_locally(script))
    assert observed.pending_restarts == {"web.service": "2026-01-02T03:04:05Z /etc/a.conf changed"}


def test_a_service_of_a_package_not_yet_installed_is_said_in_words() -> None:
    state = desired(Service(name="acme-agent"))
    seen = Observation(services={"acme-agent.service": ObservedService(name="acme-agent.service")})
    (change,) = diff_host(state, seen)
    assert change.summary == (
        "acme-agent: start (now not installed yet), enable at boot (now not installed yet)"
    )
