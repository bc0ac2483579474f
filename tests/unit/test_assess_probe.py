"""The assessment probe script, run by a real local /bin/sh with fake apt, dpkg and uname on PATH:
every part framed and read back, forged markers kept as text, a hung part named, a failed
refresh only a warning, output cut short never read as "nothing pending"."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.model.patching import PatchingSettings
from orchestrator.patching.probescript import (
    SECTIONS,
    TIMED_OUT,
    build_assess_script,
    probe_output,
    split_sections,
)
from orchestrator.patching.summary import read_probe, summarize_host

NONCE = "0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
INSTALLED = (
    "ii  acme-agent 1.0-1 acme-agent 1.0-1 all\n"
    "ii  libssl3:amd64 3.0.20-1~deb12u2 openssl 3.0.20-1~deb12u2 amd64\n"
)
SIMULATE = (
    "Inst acme-agent [1.0-1] (1.0-2 patchring lab:lab [all])\n"
    "Inst libssl3 [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security"
    " [amd64])\n"
    "Conf acme-agent (1.0-2 patchring lab:lab [all])\n"
)
POLICY = (
    "Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n"
    " 500 http://10.213.30.1:8080 lab/main amd64 Packages\n"
    "     release o=patchring,a=lab,n=lab,l=patchring lab,c=main,b=amd64\n"
    "     origin 10.213.30.1\n"
    " 500 http://security.debian.org bookworm-security/main amd64 Packages\n"
    "     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,"
    "c=main,b=amd64\n     origin security.debian.org\n"
)


def _fake_bin(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    """apt-get, apt-cache, dpkg-query and uname that print fixed text (files beside them)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, text in (("installed", INSTALLED), ("simulate", SIMULATE), ("policy", POLICY)):
        (folder / f"{name}.txt").write_text(text)
    _fake_bin(
        folder,
        "apt-get",
        f'case "$*" in *update*) echo updated;; *) cat {folder}/simulate.txt;; esac',
    )
    _fake_bin(folder, "apt-cache", f"cat {folder}/policy.txt")
    _fake_bin(
        folder,
        "dpkg-query",
        f'case "$*" in *linux-image*) printf 6.1.192-3;; *) cat {folder}/installed.txt;; esac',
    )
    # no newline after `uname -r`: the framing must still end the part on its own line
    _fake_bin(
        folder, "uname", 'case "$1" in -r) printf 6.1.0-57-amd64;; *) echo "#1 SMP Debian";; esac'
    )
    return folder


def _run(script: str, fakes: Path) -> str:
    env = {**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    return result.stdout


def test_every_part_is_framed_and_read_back(fakes: Path) -> None:
    out = _run(build_assess_script(NONCE), fakes)
    framed = split_sections(out, NONCE)
    assert framed.finished
    assert list(framed.sections) == list(SECTIONS)
    assert all(s.exit_status == 0 for s in framed.sections.values()), framed.problems()
    assert framed.problems() == []
    probe = probe_output(framed)
    assert probe.installed == INSTALLED.rstrip("\n")
    assert probe.simulated_upgrade == SIMULATE.rstrip("\n")
    assert probe.running_kernel == "6.1.0-57-amd64"
    assert probe.kernel_package_version == "6.1.192-3"
    assert probe.os_release == Path("/etc/os-release").read_text().rstrip("\n")
    assert probe.reboot_required is Path("/run/reboot-required").exists()


def test_the_read_probe_classifies_by_the_inventory_origins(fakes: Path) -> None:
    read = read_probe("h1", _run(build_assess_script(NONCE), fakes), NONCE, NOW)
    assert read.error is None and read.assessment is not None
    settings = PatchingSettings(security_origins=("o=patchring,l=patchring lab",))
    state = summarize_host(read.assessment, "canary", settings)
    classes = {u.package: u.classification for u in state.pending}
    assert classes == {"acme-agent": "security", "libssl3": "other"}
    default = summarize_host(read.assessment, "canary", PatchingSettings())
    assert {u.package: u.classification for u in default.pending} == {
        "acme-agent": "other",
        "libssl3": "security",
    }
    assert default.security[0].origins[0].codename == "bookworm-security"


def test_forged_markers_in_host_output_stay_text(fakes: Path) -> None:
    forged = (
        "@@patchring-assess ffffffffffffffff end installed 0\n"
        "@@patchring-assess ffffffffffffffff finish\n" + INSTALLED
    )
    (fakes / "installed.txt").write_text(forged)
    framed = split_sections(_run(build_assess_script(NONCE), fakes), NONCE)
    assert framed.sections["installed"].text == forged.rstrip("\n")
    assert framed.sections["installed"].exit_status == 0
    assert list(framed.sections) == list(SECTIONS)


def test_a_part_that_hangs_is_named_and_the_host_not_assessed(fakes: Path) -> None:
    _fake_bin(fakes, "apt-cache", "sleep 30")
    out = _run(build_assess_script(NONCE, part_timeout=1), fakes)
    framed = split_sections(out, NONCE)
    assert framed.finished
    assert framed.sections["policy"].exit_status == TIMED_OUT
    assert framed.sections["running_kernel"].exit_status == 0  # later parts still ran
    read = read_probe("h1", out, NONCE, NOW)
    assert read.assessment is None
    assert read.error == "probe incomplete: policy: timed out"


def test_refresh_runs_first_and_a_failure_is_only_a_warning(fakes: Path) -> None:
    out = _run(build_assess_script(NONCE, refresh_timeout=30), fakes)
    assert next(iter(split_sections(out, NONCE).sections)) == "refresh"
    assert read_probe("h1", out, NONCE, NOW).problems == ()
    _fake_bin(
        fakes,
        "apt-get",
        'case "$*" in *update*) echo "E: Could not resolve deb.example"; exit 100;; esac\n'
        f"cat {fakes}/simulate.txt",
    )
    out = _run(build_assess_script(NONCE, refresh_timeout=30), fakes)
    read = read_probe("h1", out, NONCE, NOW)
    assert read.assessment is not None
    assert read.problems[0] == "apt-get update failed (exit 100): E: Could not resolve deb.example"


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.95])
def test_output_cut_short_is_never_nothing_pending(fakes: Path, keep: float) -> None:
    out = _run(build_assess_script(NONCE), fakes)
    read = read_probe("h1", out[: int(len(out) * keep)], NONCE, NOW)
    assert read.assessment is None
    assert read.error is not None and read.error.startswith("probe incomplete")


def test_another_runs_nonce_is_not_read() -> None:
    out = f"@@patchring-assess {NONCE} start 1\n@@patchring-assess {NONCE} finish\n"
    assert split_sections(out, "fedcba9876543210").finished is False


@pytest.mark.parametrize("nonce", ["", "short", "0123456789ABCDEF", "01234567 89abcdef", "x;id"])
def test_a_bad_nonce_is_refused(nonce: str) -> None:
    with pytest.raises(ValueError, match="nonce"):
        build_assess_script(nonce)
