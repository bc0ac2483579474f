"""The resolved desired state of one host: what the compiler and the checks start from.

Every resource and variable keeps the location it came from, for `explain`, conflicts and reports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from orchestrator.model.base import Frozen
from orchestrator.model.exceptions import ActiveException
from orchestrator.model.jump import JumpHop
from orchestrator.model.policy import (
    AptRepository,
    Block,
    Command,
    Deploy,
    Directory,
    File,
    Group,
    LineEdit,
    Package,
    Patch,
    Service,
    Setting,
    Sysctl,
    User,
)
from orchestrator.source import SourceLocation

ResourceKind = Literal[
    "apt_repository",
    "group",
    "user",
    "directory",
    "package",
    "patch",
    "file",
    "line",
    "setting",
    "block",
    "sysctl",
    "command",
    "deploy",
    "service",
]
# The order resources converge in: sources before packages, groups before the users in them,
# users before the files they own, files before the services that read them.
KIND_ORDER: tuple[ResourceKind, ...] = (
    "apt_repository",
    "group",
    "user",
    "directory",
    "package",
    "patch",
    "file",
    "line",
    "setting",
    "block",
    "sysctl",
    "command",
    "deploy",
    "service",
)
Spec = (
    AptRepository
    | Package
    | Patch
    | File
    | Directory
    | Service
    | Sysctl
    | User
    | Command
    | Deploy
    | LineEdit
    | Setting
    | Block
    | Group
)


class HostTarget(Frozen):
    """How to reach a host and where it sits in the fleet."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    ring: str | None = None
    groups: tuple[str, ...] = ()
    identity_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    sudo: bool = False
    sudo_user: str | None = None
    sudo_password: SecretStr | None = Field(None, description="Read from where the inventory says.")
    sudo_password_source: str | None = None
    """`env:NAME` or `file:PATH`, for messages."""
    jump_hosts: tuple[JumpHop, ...] = ()
    """ProxyJump hops, first hop first; each hop's host key is checked in `known_hosts`."""


class DeployModule(Frozen):
    """The source of the pyinfra deploy module a `deploy:` entry names, read when the project
    was loaded (so a Git commit's version is what runs)."""

    origin: Literal["repository", "installed"]
    path: str = Field(description="Repository-relative path, e.g. deploys/motd.py.")
    content: str = Field("", repr=False)


class Resource(Frozen):
    """One resource of one policy, with every template and variable rendered for the host."""

    kind: ResourceKind
    key: str = Field(description="Unique per kind on a host: package name, path, service...")
    policy: str
    location: SourceLocation
    spec: Spec
    content: str | None = Field(
        None, description="File (or block) content after template rendering."
    )
    data: bytes | None = Field(
        None,
        repr=False,
        description="Bytes read verbatim from the repository: a file's `source:`, an apt "
        "repository's `key_file:`.",
    )
    field_locations: dict[str, SourceLocation] = {}
    deploy_module: DeployModule | None = Field(
        None, description="For a deploy from the policy repository: its module's source."
    )

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}"


class VarValue(Frozen):
    value: Any
    location: SourceLocation
    secrets: tuple[str, ...] = Field(
        (), exclude=True, repr=False, description="Texts of the value tagged secret in YAML."
    )


class UserCheckFile(Frozen):
    """A user's own testinfra test file named by a policy's `checks:`, read from the same
    project version as the policy (so `verify` runs exactly what was validated, even from a
    Git commit that is not checked out)."""

    path: str = Field(description="Repository-relative path, e.g. checks/test_agent.py.")
    policy: str
    location: SourceLocation
    content: str = Field("", repr=False)


class DesiredState(Frozen):
    host: HostTarget
    resources: tuple[Resource, ...]
    vars: dict[str, VarValue] = {}
    policies: tuple[str, ...] = ()
    patch_baseline: str | None = Field(
        None, description="The policy whose patch baseline governs this host, if any."
    )
    user_checks: tuple[UserCheckFile, ...] = ()
    exceptions: tuple[ActiveException, ...] = Field(
        (), description="The exceptions in force on this host (exceptions/*.yml), as of the run."
    )
    held: tuple[Resource, ...] = Field(
        (), description="Advisory and lock pins a hold keeps from upgrading the held package."
    )
