"""The lab's patch scenario on a mixed Debian 12 / 13 lab of its own: each host runs its release,
apt sees the security archive's origin on both, versions published later become candidates, a
kernel-like upgrade asks for a reboot, a library upgrade leaves a service on the deleted file.

Boots its own lab (name and subnet from PATCHRING_TEST_PATCH_LAB / _SUBNET, beside the session
lab of the other integration tests) and takes it down at the end, checking nothing is left.
Tests run in file order: the later ones build on the apt sources the earlier ones set up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.main import main
from orchestrator.errors import LabError
from orchestrator.lab import (
    LabConfig,
    LabStatus,
    lab_down,
    lab_publish,
    lab_status,
    lab_up,
    security_tracker_data,
)
from orchestrator.lab.cgroups import find_roots, lab_dirs, pids_in
from orchestrator.lab.hosts import probe_sshd

pytestmark = pytest.mark.integration

NAME = os.environ.get("PATCHRING_TEST_PATCH_LAB", "itpatch")
SUBNET = os.environ.get("PATCHRING_TEST_PATCH_SUBNET", "10.213.11.0/24")
VERSION_IDS = {"bookworm": "12", "trixie": "13"}
SIMULATE = (
    "LC_ALL=C apt-get -s -o Dir::Log::Planner=/dev/null "
    "-o APT::Get::Show-User-Simulation-Note=false dist-upgrade"
)
# Each host lists the lab suite and its own release's security archive, as Debian hosts list
# deb.debian.org and security.debian.org (`<codename>-security`).
SETUP = """set -e
. /etc/os-release
mkdir -p /etc/apt/keyrings
cat > /etc/apt/keyrings/patchring-lab.asc
printf 'Types: deb\\nURIs: %s\\nSuites: lab %s-security\\nComponents: main\\nSigned-By: %s\\n' \
    {url} "$VERSION_CODENAME" /etc/apt/keyrings/patchring-lab.asc \
    > /etc/apt/sources.list.d/patchring-lab.sources
apt-get update -qq
"""


@dataclass(frozen=True)
class PatchLab:
    config: LabConfig
    status: LabStatus

    @property
    def state_dir(self) -> Path:
        return self.status.state_dir

    def hosts(self, release: str | None = None) -> list[str]:
        return [h.name for h in self.status.hosts if release in (None, h.release)]

    def address(self, host: str) -> str:
        return next(h.address for h in self.status.hosts if h.name == host)

    def release(self, host: str) -> str:
        return next(h.release for h in self.status.hosts if h.name == host)

    def ssh(
        self, host: str, command: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.status.identity_file),
            "-o",
            f"UserKnownHostsFile={self.status.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{self.address(host)}",
            command,
        ]
        return subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def run(self, host: str, command: str, stdin: str | None = None) -> str:
        result = self.ssh(host, command, stdin)
        assert result.returncode == 0, f"{host}: exit {result.returncode}: {result.stderr}"
        return result.stdout

    def on_all(self, command: str) -> dict[str, str]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            outputs = pool.map(lambda host: self.run(host, command), self.hosts())
            return dict(zip(self.hosts(), outputs, strict=True))


@pytest.fixture(scope="module")
def patchlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatchLab]:
    base = tmp_path_factory.mktemp("patchlab")
    config = LabConfig(
        name=NAME,
        hosts=4,
        subnet=SUBNET,
        release="mixed",
        state_dir=base / "state",
        inventory_path=base / "inventory" / "lab.yml",
    )
    status = lab_up(config)
    try:
        yield PatchLab(config=config, status=status)
    finally:
        with contextlib.suppress(LabError):  # the last test took it down already
            lab_down(NAME, config.state_dir)


def test_each_host_runs_its_own_debian_release(patchlab: PatchLab) -> None:
    assert [h.release for h in patchlab.status.hosts] == [
        "bookworm",
        "trixie",
        "trixie",
        "bookworm",
    ]
    outputs = patchlab.on_all(". /etc/os-release; echo $VERSION_CODENAME $VERSION_ID")
    for host, output in outputs.items():
        release = patchlab.release(host)
        assert output.split() == [release, VERSION_IDS[release]]
    assert [h.release for h in lab_status(NAME, patchlab.state_dir).hosts] == [
        h.release for h in patchlab.status.hosts
    ]


def test_inventory_carries_releases_and_the_tracker_fixture(patchlab: PatchLab) -> None:
    assert patchlab.config.inventory_path is not None
    doc = yaml.safe_load(patchlab.config.inventory_path.read_text())
    for host in patchlab.status.hosts:
        assert doc["hosts"][host.name]["vars"] == {"debian_release": host.release}
    tracker = Path(doc["vars"]["lab_security_data"])
    assert tracker == patchlab.state_dir / "security-tracker.json" == patchlab.status.security_data
    assert json.loads(tracker.read_text()) == security_tracker_data()


def test_status_shows_each_hosts_release(
    patchlab: PatchLab, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lab", "status", "--name", NAME, "--state-dir", str(patchlab.state_dir)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    for host in patchlab.status.hosts:
        line = next(line for line in lines if line.strip().startswith(host.name))
        assert f" {host.release} " in line
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [h["release"] for h in document["hosts"]] == [h.release for h in patchlab.status.hosts]
    assert document["security_data"] == str(patchlab.status.security_data)


def test_lab_up_with_other_releases_is_refused(patchlab: PatchLab) -> None:
    with pytest.raises(LabError) as caught:
        lab_up(replace(patchlab.config, release="bookworm"))
    assert "already running with other Debian releases" in caught.value.message


def test_apt_sees_the_security_archive_on_both_releases(patchlab: PatchLab) -> None:
    key = (patchlab.state_dir / "lab-archive-key.asc").read_text()
    setup = SETUP.format(url=patchlab.status.apt_url)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda host: patchlab.run(host, setup, stdin=key), patchlab.hosts()))
    policies = patchlab.on_all("apt-cache policy")
    for host, policy in policies.items():
        release = patchlab.release(host)
        expected = (
            f"release v={VERSION_IDS[release]},o=patchring-lab,a=lab-security,"
            f"n={release}-security,l=patchring-lab-Security,c=main,b=amd64"
        )
        assert expected in policy, policy
        other = "trixie" if release == "bookworm" else "bookworm"
        assert f"n={other}-security" not in policy
    patchlab.on_all("apt-get install -y -q acme-agent=1.0-1 libacme1=1.0-1 >/dev/null")
    for host, simulation in patchlab.on_all(SIMULATE).items():
        version = VERSION_IDS[patchlab.release(host)]
        assert (
            "Inst acme-agent [1.0-1] (1.0-2 patchring lab:lab, "
            f"patchring-lab-Security:{version}/lab-security [all])"
        ) in simulation
        assert (
            f"Inst libacme1 [1.0-1] (1.1-1 patchring-lab-Security:{version}/lab-security [amd64])"
        ) in simulation


def test_a_published_version_is_a_candidate_after_apt_get_update(
    patchlab: PatchLab, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate = "apt-cache policy acme-agent | sed -n 's/^  Candidate: //p'"
    assert set(patchlab.on_all(candidate).values()) == {"1.0-2\n"}
    by_hash = patchlab.state_dir / "apt/dists/trixie-security/main/binary-amd64/by-hash/SHA512"
    old_indexes = set(by_hash.iterdir())
    argv = ["lab", "publish", "--name", NAME, "--state-dir", str(patchlab.state_dir)]
    assert main([*argv, "acme-agent", "1.0-4", "--suite", "lab-security"]) == 0
    assert "to bookworm-security, trixie-security" in capsys.readouterr().out
    assert old_indexes < set(by_hash.iterdir())  # a host mid-update still finds the old ones
    assert set(patchlab.on_all(candidate).values()) == {"1.0-2\n"}  # not before an update
    patchlab.on_all("apt-get update -qq")
    assert set(patchlab.on_all(candidate).values()) == {"1.0-4\n"}
    for host, simulation in patchlab.on_all(SIMULATE).items():
        version = VERSION_IDS[patchlab.release(host)]
        line = (
            f"Inst acme-agent [1.0-1] (1.0-4 patchring-lab-Security:{version}/lab-security [all])"
        )
        assert line in simulation

    # One release's archive only: the other release's hosts do not see it.
    assert lab_publish(
        "acme-tool", "1.0-2", "trixie-security", name=NAME, state_dir=patchlab.state_dir
    ) == ("trixie-security",)
    patchlab.on_all("apt-get update -qq")
    tool = "apt-cache policy acme-tool | sed -n 's/^  Candidate: //p'"
    for host, output in patchlab.on_all(tool).items():
        assert output == ("1.0-2\n" if patchlab.release(host) == "trixie" else "1.0-1\n")

    assert main([*argv, "acme-nope", "1.0-1"]) == 1
    assert "the lab has no test package 'acme-nope'" in capsys.readouterr().err


def test_a_kernel_upgrade_asks_for_a_reboot_until_the_host_reboots(patchlab: PatchLab) -> None:
    check = "cat /run/reboot-required.pkgs 2>/dev/null; test -e /run/reboot-required && echo yes"
    patchlab.on_all("apt-get install -y -q acme-kernel=1.0-1 >/dev/null")
    assert set(patchlab.on_all(check + " || echo no").values()) == {"no\n"}
    patchlab.on_all("apt-get install -y -q acme-kernel >/dev/null")  # 1.0-2 from -security
    assert set(patchlab.on_all(check).values()) == {"acme-kernel\nyes\n"}
    for host in patchlab.hosts():
        if patchlab.release(host) == "trixie":
            break
    boot_id = patchlab.run(host, "cat /proc/sys/kernel/random/boot_id")
    patchlab.ssh(host, "systemctl reboot")
    _wait_for_reboot(patchlab, host, boot_id)
    assert patchlab.run(host, check + " || echo no") == "no\n"
    assert patchlab.run(host, "dpkg-query -W -f='${Version}' acme-kernel") == "1.0-2"


def _wait_for_reboot(patchlab: PatchLab, host: str, before: str) -> None:
    """Until sshd answers again on the host with another boot id than `before`."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if probe_sshd(patchlab.address(host)):
            result = patchlab.ssh(host, "cat /proc/sys/kernel/random/boot_id")
            if result.returncode == 0 and result.stdout != before:
                return
        time.sleep(0.2)
    raise AssertionError(f"{host} did not come back from its reboot")


def test_a_library_upgrade_leaves_the_service_on_the_deleted_file(patchlab: PatchLab) -> None:
    deleted = "grep -l ' (deleted)$' /proc/[0-9]*/maps || true"
    main_pid = "systemctl show -p MainPID --value acme-libuser"
    patchlab.on_all("apt-get install -y -q libacme1=1.0-1 acme-libuser >/dev/null")
    pids = {host: output.strip() for host, output in patchlab.on_all(main_pid).items()}
    assert all(pid not in ("", "0") for pid in pids.values())
    for host, maps in patchlab.on_all(f"grep libacme /proc/$({main_pid})/maps").items():
        assert maps.rstrip().endswith("/usr/lib/x86_64-linux-gnu/libacme.so.1"), host
    assert not any(f"/proc/{pids[h]}/" in out for h, out in patchlab.on_all(deleted).items())

    patchlab.on_all("apt-get install -y -q libacme1=1.1-1 >/dev/null")
    for host, output in patchlab.on_all(deleted).items():
        assert f"/proc/{pids[host]}/maps" in output.split(), f"{host}: {output}"
    for host, maps in patchlab.on_all(f"grep libacme /proc/$({main_pid})/maps").items():
        assert maps.rstrip().endswith("/usr/lib/x86_64-linux-gnu/libacme.so.1 (deleted)"), host
    source = "dpkg-query -W -f='${binary:Package} ${source:Package} ${source:Version}' libacme1"
    assert set(patchlab.on_all(source).values()) == {"libacme1:amd64 libacme 1.1-1"}

    patchlab.on_all("systemctl restart acme-libuser")  # what a restart after patching does
    for host, output in patchlab.on_all(deleted).items():
        new_pid = patchlab.run(host, main_pid).strip()
        assert f"/proc/{new_pid}/maps" not in output.split(), host


def test_lab_down_leaves_nothing(patchlab: PatchLab) -> None:
    record = json.loads((patchlab.state_dir / "state.json").read_text())
    assert set(record["base_images"]) == {"bookworm", "trixie"}
    lab_down(NAME, patchlab.state_dir)
    assert not pids_in(lab_dirs(find_roots(), NAME))
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"pr-{NAME}-" not in namespaces
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex((patchlab.status.apt_url.split("/")[2].split(":")[0], 8080)) != 0
    for leftover in ("state.json", "security-tracker.json", "apt", "hosts"):
        assert not (patchlab.state_dir / leftover).exists(), leftover
