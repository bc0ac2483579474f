"""What a lab is: its configuration, the hosts planned from it, and the status values returned.

Pure data and pure derivations (host names, addresses, rings, groups, and the short kernel
object names: bridge, veths, network namespaces, cgroups). Imports only `orchestrator.errors`;
no subprocess, no file system access.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import LabError

DEFAULT_STATE_ROOT = Path("/var/lib/patchring/labs")
DEFAULT_CACHE_DIR = Path("/var/cache/patchring")
CGROUP_PREFIX = "patchring"
MAX_HOSTS = 200
FIRST_HOST_OFFSET = 11
ALL_HOSTS_GROUP = "lab"
# Debian releases a lab host can run: codename -> major version (as /etc/os-release says).
RELEASES = {"bookworm": "12", "trixie": "13"}
DEFAULT_RELEASE = "bookworm"
MIXED = "mixed"  # a release choice: the hosts of a ring alternate between the releases
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_MAX_NAME = 32


@dataclass(frozen=True)
class LabConfig:
    """How to build a lab. Frozen; the defaults give the demo lab of six hosts."""

    name: str = "lab"
    hosts: int = 6
    subnet: str = "10.213.0.0/24"
    rings: tuple[str, ...] = ("canary", "pilot", "broad")
    state_dir: Path | None = None
    cache_dir: Path | None = None
    inventory_path: Path | None = None
    apt_port: int = 8080
    release: str = DEFAULT_RELEASE  # a codename of RELEASES, or MIXED
    ring_releases: tuple[tuple[str, str], ...] = ()  # (ring, release or MIXED) overrides


@dataclass(frozen=True)
class LabHost:
    """One host of a running lab, as `lab_status` sees it now."""

    name: str
    address: str
    ring: str
    groups: tuple[str, ...]
    state: str  # "running" | "frozen" | "stopped"
    ssh_ok: bool
    release: str = DEFAULT_RELEASE


@dataclass(frozen=True)
class LabStatus:
    """A lab as it is now: its hosts, its apt repository and the files to reach the hosts."""

    name: str
    subnet: str
    hosts: tuple[LabHost, ...]
    apt_url: str
    state_dir: Path
    inventory_path: Path | None
    identity_file: Path
    known_hosts: Path
    security_data: Path | None = None  # the Debian Security Tracker fixture of the lab


@dataclass(frozen=True)
class HostPlan:
    """Everything fixed about one host before it boots: names, address and kernel object names."""

    index: int
    name: str
    address: str
    ring: str
    groups: tuple[str, ...]
    netns: str
    veth: str
    release: str


def state_dir_for(name: str, state_dir: Path | None) -> Path:
    """The lab's state directory: the one given, or the default for its name."""
    return Path(state_dir).absolute() if state_dir is not None else DEFAULT_STATE_ROOT / name


def cache_dir_for(cache_dir: Path | None) -> Path:
    return Path(cache_dir).absolute() if cache_dir is not None else DEFAULT_CACHE_DIR


def validate_name(name: str) -> None:
    if len(name) > _MAX_NAME or not _NAME_RE.match(name):
        raise LabError(
            f"invalid lab name {name!r}",
            hint=f"use lowercase letters, digits and single dashes, at most {_MAX_NAME} characters",
        )


def validate_config(config: LabConfig) -> ipaddress.IPv4Network:
    """Check a configuration; returns its subnet. Raises LabError naming what is wrong."""
    validate_name(config.name)
    try:
        network = ipaddress.ip_network(config.subnet, strict=True)
    except ValueError as exc:
        raise LabError(
            f"invalid lab subnet {config.subnet!r}: {exc}",
            hint="give an IPv4 network such as 10.213.0.0/24",
        ) from None
    if not isinstance(network, ipaddress.IPv4Network) or not network.is_private:
        raise LabError(
            f"lab subnet {config.subnet} is not a private IPv4 network",
            hint="use one in 10.0.0.0/8",
        )
    if not 1 <= config.hosts <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {config.hosts}")
    if FIRST_HOST_OFFSET + config.hosts > network.num_addresses - 1:
        raise LabError(
            f"subnet {config.subnet} is too small for {config.hosts} hosts",
            hint=f"hosts start at .{FIRST_HOST_OFFSET}; use a /24",
        )
    if not config.rings or len(set(config.rings)) != len(config.rings) or not all(config.rings):
        raise LabError(f"lab rings must be distinct non-empty names, not {config.rings!r}")
    if not 1 <= config.apt_port <= 65535:
        raise LabError(f"invalid apt port {config.apt_port}")
    choices = f"choose {', '.join(RELEASES)} or {MIXED}"
    for ring, release in (("", config.release), *config.ring_releases):
        if release != MIXED and release not in RELEASES:
            raise LabError(f"the lab cannot boot Debian {release!r}", hint=choices)
        if ring and ring not in config.rings:
            raise LabError(
                f"a release is given for ring {ring!r}, which the lab does not have",
                hint=f"its rings: {', '.join(config.rings)}",
            )
    return network


def host_release(choice: str, index: int) -> str:
    """The release of host number `index` (1-based) for a release choice.

    Mixed hosts alternate in pairs (bookworm, trixie, trixie, bookworm, bookworm, ...): every
    ring of two or more hosts and both of the lab's web/db groups (odd/even hosts) get both.
    """
    if choice != MIXED:
        return choice
    codenames = tuple(RELEASES)
    return codenames[(index // 2) % len(codenames)]


def lab_tag(name: str) -> str:
    """A short (at most 8 characters) stand-in for the lab name inside interface names."""
    if len(name) <= 8:
        return name
    return name[:4] + hashlib.sha256(name.encode()).hexdigest()[:4]


def bridge_name(name: str) -> str:
    return f"pr-{lab_tag(name)}"


def netns_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^pr-{re.escape(name)}-\d+$")


def veth_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^pr{re.escape(lab_tag(name))}-\d+$")


def bridge_address(network: ipaddress.IPv4Network) -> str:
    return str(network.network_address + 1)


def apt_url(network: ipaddress.IPv4Network, port: int) -> str:
    return f"http://{bridge_address(network)}:{port}/"


def ring_sizes(count: int, rings: tuple[str, ...]) -> tuple[int, ...]:
    """Hosts per ring: the first ring about 10%, each middle ring about 30%, the last the rest.

    Every ring gets at least one host while hosts remain (6 hosts: 1/2/3; 10: 1/3/6; 30: 3/9/18).
    """
    shares = [0.1] + [0.3] * (len(rings) - 2) if len(rings) > 1 else []
    sizes: list[int] = []
    left = count
    for share in shares:
        size = min(left, max(1, math.floor(count * share + 0.5)))
        sizes.append(size)
        left -= size
    sizes.append(left)
    return tuple(sizes)


def plan_hosts(config: LabConfig) -> tuple[HostPlan, ...]:
    """The hosts of a lab, in order: `<name>-01` at .11, `<name>-02` at .12, ..."""
    network = validate_config(config)
    width = max(2, len(str(config.hosts)))
    rings: list[str] = []
    for ring, size in zip(config.rings, ring_sizes(config.hosts, config.rings), strict=True):
        rings.extend([ring] * size)
    tag = lab_tag(config.name)
    per_ring = dict(config.ring_releases)
    plans = []
    for index in range(1, config.hosts + 1):
        number = f"{index:0{width}d}"
        host = f"{config.name}-{number}"
        extra = "web" if index % 2 else "db"
        ring = rings[index - 1]
        plans.append(
            HostPlan(
                index=index,
                name=host,
                address=str(network.network_address + FIRST_HOST_OFFSET - 1 + index),
                ring=ring,
                groups=(ALL_HOSTS_GROUP, extra),
                netns=f"pr-{host}",
                veth=f"pr{tag}-{number}",
                release=host_release(per_ring.get(ring, config.release), index),
            )
        )
    return tuple(plans)
