"""Inventory files as users write them (and as `patchring lab up` writes them).

An inventory is one YAML file or a folder of them; their sections are merged, and a name
defined in two files is an error naming both. A ring's rollout settings (batches, failure budget,
gate, soak, approval, windows) are `RingSettings` from `model.ring`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from orchestrator.model.base import Frozen
from orchestrator.model.desired import VarValue
from orchestrator.model.exceptions import ExceptionRules
from orchestrator.model.grammar import Address, Label, LocalPath, Login, Port
from orchestrator.model.jump import JumpHosts, SshConfigEntry
from orchestrator.model.notification import ROLLOUT_EVENT_KINDS, RolloutEventKind, WebhookFormat
from orchestrator.model.patching import PatchingSettings
from orchestrator.model.ring import RingSettings
from orchestrator.source import SourceLocation

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys that would put a sudo password into the inventory in clear.
CLEAR_PASSWORD_KEYS = ("sudo_password", "password", "sudo_pass")


def check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"'{value}' is not an environment variable name")
    return value


EnvName = Annotated[str, AfterValidator(check_env_name)]


class SshSettings(Frozen):
    """How to reach hosts. At the top level of an inventory file, for every host; under a
    group, a ring or a host, only the keys given there override (see `layered_ssh`)."""

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
    sudo: bool = Field(False, description="Log in as `user` and run every command through sudo.")
    sudo_user: Login | None = Field(None, description="The user sudo runs as (default root).")
    sudo_password_env: EnvName | None = Field(
        None, description="Environment variable holding the sudo password (masked in output)."
    )
    sudo_password_file: LocalPath | None = Field(
        None, description="File holding the sudo password; relative to the inventory file."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_clear_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in CLEAR_PASSWORD_KEYS):
            raise ValueError(
                "a sudo password is never written in the inventory; name where it is read "
                "from with sudo_password_env (an environment variable) or sudo_password_file"
            )
        return data

    @model_validator(mode="after")
    def _one_password_source(self) -> SshSettings:
        if self.sudo_password_env is not None and self.sudo_password_file is not None:
            raise ValueError("give sudo_password_env or sudo_password_file, not both")
        return self

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


class Webhook(Frozen):
    """A notification webhook: Slack or Microsoft Teams incoming webhooks in their own message
    formats, or a generic JSON receiver. The URL is a secret: read at send time from an
    environment variable or a file, masked in every output, never written in the inventory."""

    name: Label
    format: WebhookFormat = Field(description="slack, teams or json (a generic JSON body).")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL.")
    url_file: LocalPath | None = Field(
        None, description="File holding the URL; relative to the inventory file."
    )
    events: tuple[RolloutEventKind, ...] = Field(
        ROLLOUT_EVENT_KINDS, description="The rollout events to send (default: all)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_clear_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise ValueError(
                "a webhook URL is a secret and is never written in the inventory; name where "
                "it is read from with url_env (an environment variable) or url_file"
            )
        return data

    @model_validator(mode="after")
    def _one_url_source(self) -> Webhook:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give url_env or url_file (exactly one)")
        return self


DEFAULT_PARALLEL = 50
"""Hosts worked on at once (SSH connections open) when neither the inventory nor a flag says."""


class RunSettings(Frozen):
    """How a command works over the fleet (`settings:`, set once across the inventory's files)."""

    parallel: int = Field(
        DEFAULT_PARALLEL,
        ge=1,
        le=10000,
        description="Hosts worked on at once: at most this many SSH connections are open "
        "(`--parallel N` overrides it).",
    )


class HostEntry(Frozen):
    address: Address = Field(description="IP address or DNS name.")
    port: Port | None = None
    ring: Label | None = None
    groups: tuple[Label, ...] = ()
    vars: dict[str, Any] = {}
    ssh: SshSettings | None = None
    site: Label | None = Field(
        None, description="The site whose worker reaches this host (rollouts on Temporal)."
    )


class GroupEntry(Frozen):
    vars: dict[str, Any] = {}
    ssh: SshSettings | None = None
    site: Label | None = Field(None, description="The site of the group's hosts (Temporal).")


DEFAULT_SITE = "default"
"""The site of hosts that name none (neither they nor any of their groups)."""


class TemporalSettings(Frozen):
    """Where the Temporal service is (environment TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE and
    the command line win)."""

    address: str | None = Field(None, description="host:port of the Temporal frontend.")
    namespace: Label | None = Field(None, description="Temporal namespace (default: default).")


class RolloutEngineSettings(Frozen):
    """Which engine drives rollouts: the embedded conductor (default) or Temporal."""

    engine: Literal["embedded", "temporal"] = "embedded"
    temporal: TemporalSettings = TemporalSettings()


class RingEntry(RingSettings):
    name: Label
    description: str = ""
    vars: dict[str, Any] = {}
    ssh: SshSettings | None = None


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
    exceptions: ExceptionRules | None = Field(
        None, description="How exceptions (exceptions/*.yml) are governed."
    )
    notifications: tuple[Webhook, ...] = Field(
        (), description="Webhooks told about rollout events (started, ring passed, ...)."
    )
    settings: RunSettings | None = None
    rollout: RolloutEngineSettings | None = Field(
        None, description="The rollout engine: embedded (default) or temporal, with its address."
    )


# --- The merged inventory, as loaders hand it to resolution and rollout -------------------------


class InventoryGroup(Frozen):
    """A group declared under `groups:`; hosts may also name groups nobody declared."""

    name: str
    vars: dict[str, VarValue] = {}
    ssh: SshSettings | None = None
    site: str | None = None
    location: SourceLocation


class InventoryRing(RingSettings):
    """A rollout ring, in the order rings roll out, with its rollout settings."""

    name: str
    description: str = ""
    vars: dict[str, VarValue] = {}
    ssh: SshSettings | None = None
    location: SourceLocation


class InventoryHost(Frozen):
    """One host with its variables located where the inventory sets them."""

    name: str
    address: str
    port: int | None = None
    ring: str | None = None
    groups: tuple[str, ...] = ()
    vars: dict[str, VarValue] = {}
    ssh: SshSettings | None = None
    site: str | None = None
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
    exception_rules: ExceptionRules = ExceptionRules()
    security_data: str | None = None
    """The tracker JSON file (repository-relative, checked clean); read by `assess`."""
    security_data_location: SourceLocation | None = None
    sudo_passwords: dict[str, SecretStr] = {}
    """Sudo passwords read at load time, keyed by `password_source(settings)`."""
    notifications: tuple[Webhook, ...] = ()
    """Every file's webhooks, in file order (`url_file` made absolute where possible)."""
    settings: RunSettings = RunSettings()
    rollout: RolloutEngineSettings = RolloutEngineSettings()

    def host_site(self, host: InventoryHost) -> str:
        """The host's own site, else its first group's (in the host's order) that names one,
        else the default site."""
        groups = (self.groups.get(name) for name in host.groups)
        named = [group.site for group in groups if group is not None and group.site]
        return host.site or next(iter(named), DEFAULT_SITE)

    def host_ssh(self, host: InventoryHost) -> SshSettings:
        """The ssh settings of a host: the top-level `ssh:` < its groups' (the host's order,
        later wins) < its ring's < its own; a layer overrides only the keys it gives."""
        groups = (self.groups.get(name) for name in host.groups)
        ring = self.ring(host.ring) if host.ring else None
        layers = [*(group.ssh for group in groups if group), ring.ssh if ring else None, host.ssh]
        return layered_ssh(self.ssh, [layer for layer in layers if layer is not None])

    def host_ssh_given(self, host: InventoryHost) -> set[str]:
        """The ssh keys some layer of the host's settings gives (an ssh_config file fills in
        only the others)."""
        groups = (self.groups.get(name) for name in host.groups)
        ring = self.ring(host.ring) if host.ring else None
        layers = [*(group.ssh for group in groups if group), ring.ssh if ring else None, host.ssh]
        given = set(self.ssh.model_fields_set)
        for layer in layers:
            given |= layer.model_fields_set if layer is not None else set()
        return given

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


_PASSWORD_KEYS = {"sudo_password_env", "sudo_password_file"}


def layered_ssh(base: SshSettings, layers: list[SshSettings]) -> SshSettings:
    """`base` with the keys each layer sets (in order, later wins). A layer naming a password
    source replaces the one below it, whichever kind that was."""
    merged = base
    for layer in layers:  # each layer was validated on its own: copy its values as they are
        given = layer.model_fields_set
        update = {name: getattr(layer, name) for name in given}
        if given & _PASSWORD_KEYS:
            update = {**dict.fromkeys(_PASSWORD_KEYS), **update}
        merged = merged.model_copy(update=update)
    return merged


def password_source(ssh: SshSettings) -> str | None:
    """Where the sudo password of these settings is read: `env:NAME`, `file:PATH` or None."""
    if ssh.sudo_password_env is not None:
        return f"env:{ssh.sudo_password_env}"
    if ssh.sudo_password_file is not None:
        return f"file:{ssh.sudo_password_file}"
    return None
