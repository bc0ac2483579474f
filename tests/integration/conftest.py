"""The integration lab: ten real Debian hosts over three rings, booted once per test session.

Tests that need pristine hosts call `lab.reset()`; a test that breaks a host resets it after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.lab import LabConfig, LabStatus, faults, lab_down, lab_up
from tests.integration.fleet import ssh_config

# Overridable so that two checkouts can run their integration suites on one machine at once.
LAB_NAME = os.environ.get("PATCHRING_TEST_LAB", "it")
LAB_SUBNET = os.environ.get("PATCHRING_TEST_SUBNET", "10.213.8.0/24")
# bookworm, trixie or mixed (Debian 12 and 13 hosts alternating): the Debian of the lab hosts.
LAB_RELEASE = os.environ.get("PATCHRING_TEST_RELEASE", "bookworm")
RESET_SYSCTL = "net.ipv4.conf.all.send_redirects=1"


@dataclass(frozen=True)
class Lab:
    status: LabStatus
    inventory: Path
    ssh_config: Path

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.status.hosts]

    def address(self, name: str) -> str:
        return next(h.address for h in self.status.hosts if h.name == name)

    def ring(self, ring: str) -> list[str]:
        return [h.name for h in self.status.hosts if h.ring == ring]

    def exec(self, name: str, *argv: str) -> str:
        proc = faults.host_exec(LAB_NAME, name, list(argv), state_dir=self.status.state_dir)
        assert proc.returncode == 0, f"{argv} on {name}: {proc.stderr}"
        return str(proc.stdout)

    def reset(self, names: list[str] | None = None) -> None:
        chosen = names or self.hosts
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(
                pool.map(
                    lambda n: faults.reset_host(LAB_NAME, n, state_dir=self.status.state_dir),
                    chosen,
                )
            )
            # A reset host keeps its network namespace, and with it the net.* sysctls an
            # earlier test applied: put back the default of the one the example sets.
            list(pool.map(lambda n: self.exec(n, "sysctl", "-qw", RESET_SYSCTL), chosen))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("lab")
    inventory = base / "lab.yml"
    config = LabConfig(
        name=LAB_NAME, hosts=10, subnet=LAB_SUBNET, inventory_path=inventory, release=LAB_RELEASE
    )
    status = lab_up(config)
    try:
        config = ssh_config(base / "ssh_config", status.identity_file, status.known_hosts)
        yield Lab(status=status, inventory=inventory, ssh_config=config)
    finally:
        lab_down(LAB_NAME, status.state_dir)
