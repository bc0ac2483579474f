"""Inventory files as users write them (and as `patchring lab up` writes them).

An inventory is one YAML file or a folder of them; their sections are merged, and a name
defined in two files is an error naming both. A ring's rollout settings (batches, failure budget,
gate, soak, approval, windows) are `RingSettings` from `model.ring`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orchestrator.model.base import Frozen
from orchestrator.model.desired import VarValue
from orchestrator.model.grammar import Address, Label, LocalPath, Login, Port
from orchestrator.model.jump import JumpHosts, SshConfigEntry
from orchestrator.model.patching import PatchingSettings
from orchestrator.model.ring import RingSettings
from orchestrator.source import SourceLocation


class SshSettings(Frozen):
    user: Login = "root"
    port: Port = 22
    identity_file: LocalPath | None = Field(None, description="Private key; relative to the file.")
    known_hosts: LocalPath | None = Field(
        None, description="known_hosts file; host keys are checked."
    )
    connect_timeout: float = Field(
        10.0,
        ge=1,
        le=120,
        description="Seconds to open an SSH session; a host that answers no keepalive for "
        "3 times this long is given up (frozen or cut off) whatever it was doing.",
    )
    command_timeout: float = Field(
        300.0,
        ge=1,
        le=86400,
        description="Limit for any one remote step (an operation; the probe takes at most 60 s).",
    )
    jump_host: JumpHosts = Field(
        (),
        description="ProxyJump: hops `[user@]host[:port]`, comma-separated or a list; each "
        "hop's host key is checked against known_hosts; user and key default to the host's.",
    )
    config_file: LocalPath | None = Field(
        None,
        description="OpenSSH ssh_config read for HostName, User, Port, IdentityFile and "
        "ProxyJump of each host's address; relative to the file. Inventory values win.",
    )


class HostEntry(Frozen):
    address: Address = Field(description="IP address or DNS name.")
    port: Port | None = None
    ring: Label | None = None
    groups: tuple[Label, ...] = ()
    vars: dict[str, Any] = {}


class GroupEntry(Frozen):
    vars: dict[str, Any] = {}


class RingEntry(RingSettings):
    name: Label
    description: str = ""
    vars: dict[str, Any] = {}


class InventoryDocument(Frozen):
    ssh: SshSettings | None = None
    vars: dict[str, Any] = {}
    secret_vars: tuple[str, ...] = Field(
        (), description="Variables whose values are secrets, masked in every output."
    )
    groups: dict[Label, GroupEntry] = {}
    rings: tuple[RingEntry, ...] = ()
    hosts: dict[Label, HostEntry] = {}
    patching: PatchingSettings | None = None
    security_data: str | None = Field(
        None, description="Debian Security Tracker JSON file, relative to the repository."
    )


# --- The merged inventory, as loaders hand it to resolution and rollout -------------------------


class InventoryGroup(Frozen):
    """A group declared under `groups:`; hosts may also name groups nobody declared."""

    name: str
    vars: dict[str, VarValue] = {}
    location: SourceLocation


class InventoryRing(RingSettings):
    """A rollout ring, in the order rings roll out, with its rollout settings."""

    name: str
    description: str = ""
    vars: dict[str, VarValue] = {}
    location: SourceLocation


class InventoryHost(Frozen):
    """One host with its variables located where the inventory sets them."""

    name: str
    address: str
    port: int | None = None
    ring: str | None = None
    groups: tuple[str, ...] = ()
    vars: dict[str, VarValue] = {}
    location: SourceLocation


class Inventory(Frozen):
    """Every inventory file merged: ssh settings (relative paths made absolute where possible),
    global vars, groups, rings in rollout order and hosts in inventory order."""

    ssh: SshSettings = Field(default_factory=lambda: SshSettings.model_validate({}))
    ssh_location: SourceLocation | None = None
    ssh_config: dict[str, SshConfigEntry] = {}
    """What `ssh: config_file:` says for each host address and jump host it was asked for."""
    vars: dict[str, VarValue] = {}
    groups: dict[str, InventoryGroup] = {}
    rings: tuple[InventoryRing, ...] = ()
    hosts: dict[str, InventoryHost] = {}
    files: tuple[str, ...] = ()
    secret_vars: dict[str, SourceLocation] = {}
    """Names listed under `secret_vars:` in any file, with where each is listed."""
    patching: PatchingSettings = PatchingSettings()
    security_data: str | None = None
    """The tracker JSON file (repository-relative, checked clean); read by `assess`."""
    security_data_location: SourceLocation | None = None

    def ring_names(self) -> tuple[str, ...]:
        """Defined rings in order, then rings hosts name that no file defines."""
        defined = tuple(ring.name for ring in self.rings)
        named = tuple(dict.fromkeys(h.ring for h in self.hosts.values() if h.ring is not None))
        return defined + tuple(name for name in named if name not in defined)

    def group_names(self) -> tuple[str, ...]:
        """Declared groups, then groups only hosts name, in first-seen order."""
        named = (group for host in self.hosts.values() for group in host.groups)
        return tuple(dict.fromkeys((*self.groups, *named)))

    def ring(self, name: str) -> InventoryRing | None:
        return next((ring for ring in self.rings if ring.name == name), None)

    def ring_settings(self, name: str) -> RingSettings:
        """The settings of a defined ring; the defaults for rings only hosts name (and for
        hosts without a ring)."""
        return self.ring(name) or RingSettings()
