"""The lab fleet itself: real hosts boot, ssh is strict, the signed repo works, faults, teardown.

Boots its own small lab ("itlab", 3 hosts on 10.213.9.0/24) beside the session lab of the other
integration tests, and takes it down at the end. The last test checks that `lab_down` leaves
nothing behind; tests before it may change hosts, so they run in file order.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import LabError
from orchestrator.lab import LabConfig, LabStatus, faults, lab_down, lab_status, lab_up
from orchestrator.lab.cgroups import find_roots, lab_dirs, pids_in
from orchestrator.lab.config import ring_sizes
from orchestrator.lab.system import process_alive

pytestmark = pytest.mark.integration

NAME = "itlab"
SUBNET = "10.213.9.0/24"


@dataclass(frozen=True)
class ItLab:
    config: LabConfig
    status: LabStatus

    @property
    def state_dir(self) -> Path:
        return self.status.state_dir

    def address(self, index: int) -> str:
        return self.status.hosts[index].address

    def host(self, index: int) -> str:
        return self.status.hosts[index].name


@pytest.fixture(scope="module")
def itlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ItLab]:
    base = tmp_path_factory.mktemp("itlab")
    config = LabConfig(
        name=NAME,
        hosts=3,
        subnet=SUBNET,
        state_dir=base / "state",
        inventory_path=base / "inventory" / "lab.yml",
    )
    status = lab_up(config)
    try:
        yield ItLab(config=config, status=status)
    finally:
        with contextlib.suppress(LabError):  # the last test took it down already
            lab_down(NAME, config.state_dir)


def ssh(
    lab: ItLab,
    address: str,
    command: str,
    *,
    known_hosts: Path | None = None,
    connect_timeout: int = 5,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(lab.status.identity_file),
        "-o",
        f"UserKnownHostsFile={known_hosts or lab.status.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        f"root@{address}",
        command,
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


def test_rings_are_spread_ten_thirty_rest() -> None:
    rings = ("canary", "pilot", "broad")
    assert ring_sizes(6, rings) == (1, 2, 3)
    assert ring_sizes(10, rings) == (1, 3, 6)
    assert ring_sizes(30, rings) == (3, 9, 18)
    assert ring_sizes(3, rings) == (1, 1, 1)
    assert ring_sizes(1, rings) == (1, 0, 0)
    assert ring_sizes(5, ("all",)) == (5,)


def test_status_reports_every_host_running(itlab: ItLab) -> None:
    status = lab_status(NAME, itlab.state_dir)
    assert [h.name for h in status.hosts] == ["itlab-01", "itlab-02", "itlab-03"]
    assert [h.address for h in status.hosts] == ["10.213.9.11", "10.213.9.12", "10.213.9.13"]
    assert [h.ring for h in status.hosts] == ["canary", "pilot", "broad"]
    assert [h.groups for h in status.hosts] == [("lab", "web"), ("lab", "db"), ("lab", "web")]
    assert {(h.state, h.ssh_ok) for h in status.hosts} == {("running", True)}
    assert status.apt_url == "http://10.213.9.1:8080/"
    assert status.identity_file.stat().st_mode & 0o077 == 0
    assert status.inventory_path == itlab.config.inventory_path


def test_inventory_file_lists_hosts_key_and_repo(itlab: ItLab) -> None:
    assert itlab.config.inventory_path is not None
    text = itlab.config.inventory_path.read_text()
    assert text.startswith('# Written by `patchring lab up` for the lab "itlab". Do not edit')
    doc = yaml.safe_load(text)
    assert list(doc) == ["ssh", "vars", "hosts"]
    assert doc["vars"]["lab_security_data"] == str(itlab.state_dir / "security-tracker.json")
    assert doc["ssh"] == {
        "user": "root",
        "identity_file": str(itlab.status.identity_file),
        "known_hosts": str(itlab.status.known_hosts),
    }
    assert doc["vars"]["lab_apt_url"] == "http://10.213.9.1:8080/"
    key = doc["vars"]["lab_apt_key"]
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    assert key.strip().endswith("-----END PGP PUBLIC KEY BLOCK-----")
    assert key == (itlab.state_dir / "lab-archive-key.asc").read_text()
    assert doc["hosts"]["itlab-02"] == {
        "address": "10.213.9.12",
        "ring": "pilot",
        "groups": ["lab", "db"],
        "vars": {"debian_release": "bookworm"},
    }


def test_ssh_is_strict_and_hosts_run_systemd(itlab: ItLab) -> None:
    for index in range(3):
        out = ok(
            ssh(
                itlab,
                itlab.address(index),
                "hostname; systemctl is-system-running --wait; "
                "sysctl -w net.ipv4.conf.all.send_redirects=0 >/dev/null; "
                "sysctl -n net.ipv4.conf.all.send_redirects; ip route",
            )
        ).split("\n")
        assert out[0] == itlab.host(index)
        assert out[1] in ("running", "degraded")
        assert out[2] == "0"
        assert "default" not in "\n".join(out[3:])  # hosts reach only the lab subnet
    # Each host has its own key: the known_hosts of another host's key is refused.
    lines = itlab.status.known_hosts.read_text().splitlines()
    assert len(lines) == 3
    keys = [line.split(" ", 1)[1] for line in lines]
    swapped = itlab.state_dir.parent / "known_hosts_swapped"
    swapped.write_text(f"{itlab.address(0)} {keys[1]}\n")
    refused = ssh(itlab, itlab.address(0), "true", known_hosts=swapped)
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    empty = itlab.state_dir.parent / "known_hosts_empty"
    empty.write_text("")
    refused = ssh(itlab, itlab.address(0), "true", known_hosts=empty)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


SOURCES = (
    "Types: deb\nURIs: {url}\nSuites: {suite}\nComponents: main\n"
    "Signed-By: /etc/apt/keyrings/patchring-lab.asc\n"
)


def test_signed_repo_install_upgrade_and_broken_update(itlab: ItLab) -> None:
    host, address = itlab.host(0), itlab.address(0)
    url = itlab.status.apt_url
    key = (itlab.state_dir / "lab-archive-key.asc").read_text()
    unsigned = (
        f"printf 'deb {url} lab main\\n' > /etc/apt/sources.list.d/lab.list && apt-get update"
    )
    refused = ssh(itlab, address, unsigned)
    assert refused.returncode != 0
    assert "NO_PUBKEY" in refused.stdout + refused.stderr
    setup = (
        "set -e; rm /etc/apt/sources.list.d/lab.list; mkdir -p /etc/apt/keyrings; "
        "cat > /etc/apt/keyrings/patchring-lab.asc; "
        f"printf '{SOURCES.format(url=url, suite='lab')}' > /etc/apt/sources.list.d/lab.sources"
    )
    ok(
        subprocess.run(
            [*_ssh_argv(itlab, address), setup], input=key, capture_output=True, text=True
        )
    )
    out = ok(ssh(itlab, address, "apt-get update 2>&1 && apt-get install -y acme-agent=1.0-1 2>&1"))
    assert "Setting up acme-agent (1.0-1)" in out
    assert ok(ssh(itlab, address, "systemctl is-active acme-agent")).strip() == "active"
    first_pid = ok(ssh(itlab, address, "systemctl show -p MainPID --value acme-agent")).strip()
    journal = ok(ssh(itlab, address, "journalctl -u acme-agent --no-pager -o cat"))
    assert "acme-agent 1.0-1 starting" in journal
    # Read back without ssh: the host's own dpkg database.
    version = faults.host_exec(
        NAME, host, ["dpkg-query", "-W", "-f=${Version}", "acme-agent"], itlab.state_dir
    )
    assert version.stdout == "1.0-1"

    ok(ssh(itlab, address, "apt-get install -y acme-agent=1.0-2 acme-tool 2>&1"))
    assert ok(ssh(itlab, address, "cat /usr/share/acme-agent/VERSION")).strip() == "1.0-2"
    assert ok(ssh(itlab, address, "systemctl is-active acme-agent")).strip() == "active"
    second_pid = ok(ssh(itlab, address, "systemctl show -p MainPID --value acme-agent")).strip()
    assert second_pid not in (first_pid, "0")  # the postinst restarted the service
    assert ok(ssh(itlab, address, "acme-tool")).strip() == "acme-tool 1.0-1 (agent 1.0-2)"

    broken = SOURCES.format(url=url, suite="broken")
    command = (
        f"printf '{broken}' > /etc/apt/sources.list.d/broken.sources && apt-get update -qq && "
        "apt-get install -y acme-agent=1.0-3"
    )
    failed = ssh(itlab, address, command)
    assert failed.returncode != 0
    assert "acme-agent: simulated broken postinst" in failed.stdout + failed.stderr
    status = ok(ssh(itlab, address, "dpkg-query -W -f='${Status}' acme-agent"))
    assert status == "install ok half-configured"
    ok(ssh(itlab, address, "apt-get install -y --allow-downgrades acme-agent=1.0-2 2>&1"))
    assert ok(ssh(itlab, address, "dpkg-query -W -f='${Status} ${Version}' acme-agent")) == (
        "install ok installed 1.0-2"
    )


def _ssh_argv(lab: ItLab, address: str) -> list[str]:
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(lab.status.identity_file),
        "-o",
        f"UserKnownHostsFile={lab.status.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        f"root@{address}",
    ]


def test_host_exec_reaches_the_host_without_ssh(itlab: ItLab) -> None:
    host, address = itlab.host(1), itlab.address(1)
    result = faults.host_exec(NAME, host, ["cat", "/etc/hostname"], itlab.state_dir)
    assert (result.returncode, result.stdout) == (0, f"{host}\n")
    faults.host_exec(
        NAME, host, ["sh", "-c", "echo behind-your-back > /root/marker"], itlab.state_dir
    )
    assert ok(ssh(itlab, address, "cat /root/marker")) == "behind-your-back\n"
    failed = faults.host_exec(NAME, host, ["false"], itlab.state_dir)
    assert failed.returncode == 1


def test_freeze_makes_ssh_hang_and_thaw_restores_it(itlab: ItLab) -> None:
    host, address = itlab.host(1), itlab.address(1)
    faults.freeze_host(NAME, host, itlab.state_dir)
    try:
        status = lab_status(NAME, itlab.state_dir)
        assert (status.hosts[1].state, status.hosts[1].ssh_ok) == ("frozen", False)
        assert (status.hosts[0].state, status.hosts[0].ssh_ok) == ("running", True)
        started = time.monotonic()
        hung = ssh(itlab, address, "true", connect_timeout=2, timeout=20)
        assert hung.returncode == 255
        assert time.monotonic() - started >= 1.5  # it hung until the timeout, not refused
        assert "timed out" in hung.stderr
    finally:
        faults.thaw_host(NAME, host, itlab.state_dir)
    assert ok(ssh(itlab, address, "hostname")).strip() == host
    assert lab_status(NAME, itlab.state_dir).hosts[1].state == "running"


def test_partition_and_heal(itlab: ItLab) -> None:
    host, address = itlab.host(2), itlab.address(2)
    faults.partition_host(NAME, host, itlab.state_dir)
    try:
        cut = ssh(itlab, address, "true", connect_timeout=2, timeout=20)
        assert cut.returncode == 255
        assert lab_status(NAME, itlab.state_dir).hosts[2].ssh_ok is False
    finally:
        faults.heal_host(NAME, host, itlab.state_dir)
    assert ok(ssh(itlab, address, "hostname")).strip() == host


def test_reset_host_gives_a_fresh_host_with_the_same_identity(itlab: ItLab) -> None:
    host, address = itlab.host(0), itlab.address(0)
    machine_id = ok(ssh(itlab, address, "cat /etc/machine-id"))
    ok(ssh(itlab, address, "touch /root/leftover"))
    faults.reset_host(NAME, host, itlab.state_dir)
    out = ok(
        ssh(itlab, address, "ls /root/leftover /usr/share/acme-agent 2>&1; cat /etc/machine-id")
    )
    assert "No such file" in out
    assert out.endswith(machine_id)
    assert ok(ssh(itlab, address, "systemctl is-system-running --wait")).strip() in (
        "running",
        "degraded",
    )
    assert lab_status(NAME, itlab.state_dir).hosts[0].state == "running"


def test_crash_then_reset(itlab: ItLab) -> None:
    host, address = itlab.host(2), itlab.address(2)
    faults.crash_host(NAME, host, itlab.state_dir)
    status = lab_status(NAME, itlab.state_dir)
    assert (status.hosts[2].state, status.hosts[2].ssh_ok) == ("stopped", False)
    faults.reset_host(NAME, host, itlab.state_dir)
    assert ok(ssh(itlab, address, "hostname")).strip() == host


def test_lab_up_again_returns_the_running_lab(itlab: ItLab) -> None:
    before = json.loads((itlab.state_dir / "state.json").read_text())
    status = lab_up(itlab.config)
    assert [h.name for h in status.hosts] == [h.name for h in itlab.status.hosts]
    after = json.loads((itlab.state_dir / "state.json").read_text())
    assert after["host_records"] == before["host_records"]  # same runner PIDs: nothing rebooted


def test_lab_up_with_another_host_count_is_refused(itlab: ItLab) -> None:
    with pytest.raises(LabError) as caught:
        lab_up(replace(itlab.config, hosts=4))
    assert "already running with 3 hosts" in caught.value.message
    assert caught.value.hint is not None and "lab down" in caught.value.hint


def test_lab_up_on_a_subnet_in_use_is_refused(itlab: ItLab, tmp_path: Path) -> None:
    other = LabConfig(name="itlab2", hosts=2, subnet=SUBNET, state_dir=tmp_path / "state")
    with pytest.raises(LabError) as caught:
        lab_up(other)
    assert f"subnet {SUBNET} is already in use" in caught.value.message
    assert "pr-itlab" in caught.value.message  # names what uses it: the bridge of itlab
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "pr-itlab2" not in links
    assert not (tmp_path / "state" / "state.json").exists()


def test_status_and_down_of_a_lab_that_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(LabError) as caught:
        lab_down("itlab-none", tmp_path)
    assert caught.value.message == "lab 'itlab-none' is not running"
    with pytest.raises(LabError, match="is not running"):
        lab_status("itlab-none", tmp_path)
    with pytest.raises(LabError, match="invalid lab name"):
        lab_down("Bad Name", tmp_path)


def test_lab_down_leaves_nothing(itlab: ItLab) -> None:
    record = json.loads((itlab.state_dir / "state.json").read_text())
    daemons = [h["runner"] for h in record["host_records"]] + [record["http"]]
    cgroup_dirs = [Path(d) for daemon in daemons for d in daemon["cgroups"]]
    assert all(d.is_dir() for d in cgroup_dirs)

    lab_down(NAME, itlab.state_dir)

    for daemon in daemons:
        assert not process_alive(daemon["pid"], daemon["start_time"])
    roots = find_roots()
    assert not pids_in(lab_dirs(roots, NAME))
    assert not any(d.exists() for d in [*cgroup_dirs, *lab_dirs(roots, NAME)])
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "pr-itlab-" not in namespaces
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert "pr-itlab " not in links and "pritlab-" not in links
    hosts_dir = str(itlab.state_dir / "hosts")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                assert hosts_dir not in (entry / "mountinfo").read_text(), f"mount left in {entry}"
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("10.213.9.1", 8080)) != 0  # apt server gone with the bridge
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert f"unreachable {SUBNET}" in routes  # the guard route stays on purpose
    assert not (itlab.state_dir / "state.json").exists()
    with pytest.raises(LabError, match="is not running"):
        lab_status(NAME, itlab.state_dir)
    with pytest.raises(LabError, match="is not running"):
        lab_down(NAME, itlab.state_dir)


def test_lab_needs_root_message_is_a_lab_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError) as caught:
        lab_up(LabConfig(name="itlab3", hosts=1, subnet="10.213.10.0/24"))
    assert caught.value.message == "the lab needs root"
