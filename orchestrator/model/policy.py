"""Policy files as users write them: one YAML document per file under `policies/`.

Every string field may use `{{ var }}` (Jinja2, StrictUndefined); rendering happens at
resolution time, per host. Field descriptions here become the JSON Schema editors use.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from orchestrator.model.base import Frozen
from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.grammar import (
    AptUrl,
    AptWord,
    HostPath,
    PackageName,
    PolicyLine,
    PolicyLogin,
    RepoPath,
    SysctlValue,
    UnitName,
)

# Debian policy: [epoch:]upstream[-revision]; upstream starts with a digit.
DEBIAN_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
MODE = r"^0?[0-7]{3,4}$"


def check_debian_version(value: str) -> str:
    if "{{" not in value and not DEBIAN_VERSION.match(value):
        raise ValueError(f"'{value}' is not a Debian version (like 1.0-2 or 1:2.3-1~deb12u1)")
    return value


RESOURCE_ID = r"^[a-z][a-z_]*:\S.*$"


def _check_resource_id(value: str) -> str:
    if "{{" not in value and not re.match(RESOURCE_ID, value):
        raise ValueError(f"'{value}' is not a resource id (kind:key, like package:nginx)")
    return value


ResourceId = Annotated[PolicyLine, AfterValidator(_check_resource_id)]


class ResourceSpec(Frozen):
    """What every entry of a policy section (a resource) shares."""

    after: tuple[ResourceId, ...] = Field(
        (),
        description="Resource ids (as plans show them, e.g. package:nginx, file:/etc/x, "
        "service:nginx) this resource must apply after, on every host that has it. The "
        "default order is apt sources, users, directories, packages, patches, files, sysctls, "
        "commands, deploys, services; `after` moves a resource later than the ones it names.",
    )


def field_names(model: type[BaseModel]) -> list[str]:
    """A model's field names as people read them: a resource's own keys first, then those
    every resource shares (`after`); other models in declaration order."""
    shared = ResourceSpec.model_fields if issubclass(model, ResourceSpec) else {}
    own = [name for name in model.model_fields if name not in shared]
    return own + list(shared)


class Selector(Frozen):
    """Which hosts a policy applies to: a host matches if any listed criterion matches."""

    all: bool = Field(False, description="Apply to every host in the inventory.")
    groups: tuple[str, ...] = Field((), description="Hosts in any of these groups.")
    rings: tuple[str, ...] = Field((), description="Hosts in any of these rings.")
    hosts: tuple[str, ...] = Field((), description="These hosts by name.")

    @model_validator(mode="after")
    def _not_empty(self) -> Selector:
        if not (self.all or self.groups or self.rings or self.hosts):
            raise ValueError("selects no host: set all: true, or groups, rings or hosts")
        return self


class AptRepository(ResourceSpec):
    """An apt source with its signing key, written to /etc/apt/sources.list.d/<name>.list."""

    name: str = Field(pattern=NAME, description="File name of the source and its key.")
    url: AptUrl = Field(description="Repository URL, e.g. http://deb.example.org/debian")
    suite: AptWord = Field(description="Suite (distribution), e.g. bookworm.")
    components: tuple[AptWord, ...] = ("main",)
    key: str = Field(description="ASCII-armored public signing key (inline or from a variable).")


class Package(ResourceSpec):
    """A Debian package: present, absent, latest, or pinned to an exact version."""

    name: PackageName
    state: Literal["present", "absent", "latest"] = "present"
    version: str | None = Field(None, description="Exact version to install (pin).")
    hold: bool = Field(False, description="apt-mark hold the package at its version.")

    _version = field_validator("version")(lambda v: v if v is None else check_debian_version(v))

    @model_validator(mode="after")
    def _coherent(self) -> Package:
        if self.version is not None and self.state != "present":
            raise ValueError(f"version is set, so state must be 'present', not '{self.state}'")
        if self.hold and self.state == "absent":
            raise ValueError("an absent package cannot be held")
        return self


class File(ResourceSpec):
    """A file with inline content or a Jinja2 template from the policy repository."""

    path: HostPath = Field(description="Absolute path on the host.")
    content: str | None = Field(None, description="Inline content.")
    template: RepoPath | None = Field(
        None, description="Jinja2 template, relative to the repo root."
    )
    owner: PolicyLogin = "root"
    group: PolicyLogin = "root"
    mode: str = Field("0644", pattern=MODE)
    restart: tuple[UnitName, ...] = Field((), description="Services to restart when it changes.")

    @model_validator(mode="after")
    def _one_source(self) -> File:
        if (self.content is None) == (self.template is None):
            raise ValueError("set exactly one of content or template")
        return self


class Directory(ResourceSpec):
    path: HostPath
    owner: PolicyLogin = "root"
    group: PolicyLogin = "root"
    mode: str = Field("0755", pattern=MODE)


class Service(ResourceSpec):
    """A systemd service."""

    name: UnitName
    running: bool = True
    enabled: bool = True


class Sysctl(ResourceSpec):
    """A kernel parameter, set now and persisted in /etc/sysctl.d/."""

    key: str = Field(pattern=r"^[a-z0-9_]+(\.[A-Za-z0-9_*-]+)+$")
    value: SysctlValue

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class User(ResourceSpec):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    present: bool = True
    uid: int | None = Field(None, ge=0, le=4294967294)
    group: PolicyLogin | None = Field(None, description="Primary group.")
    groups: tuple[PolicyLogin, ...] = Field((), description="Supplementary groups.")
    home: HostPath | None = None
    shell: HostPath | None = None
    system: bool = False


class Command(ResourceSpec):
    """An escape hatch: a shell command that states how it is idempotent."""

    name: PolicyLine
    run: str
    creates: HostPath | None = Field(None, description="Skip when this path exists.")
    unless: str | None = Field(None, description="Skip when this command exits 0.")

    @model_validator(mode="after")
    def _idempotent(self) -> Command:
        if self.creates is None and self.unless is None:
            raise ValueError("a command must say how it is idempotent: set creates or unless")
        return self


class Patch(ResourceSpec):
    """A security advisory: hosts below the fixed version are upgraded to it."""

    advisory: PolicyLine = Field(description="Advisory id, e.g. DSA-5678-1.")
    cves: tuple[PolicyLine, ...] = ()
    package: PackageName
    fixed: str = Field(description="First fixed version (Debian ordering).")
    description: str = ""

    _fixed = field_validator("fixed")(check_debian_version)


class Deploy(ResourceSpec):
    """Call a pyinfra deploy from the `deploys` package with arguments."""

    name: PolicyLine
    use: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="module:function inside the deploys package, e.g. motd:configure_motd",
    )
    args: dict[str, Any] = {}


class PolicyDocument(Frozen):
    """One policy file."""

    name: str = Field(pattern=NAME)
    description: str = ""
    select: Selector
    vars: dict[str, Any] = Field({}, description="Defaults; the inventory overrides them.")
    apt_repositories: tuple[AptRepository, ...] = ()
    packages: tuple[Package, ...] = ()
    files: tuple[File, ...] = ()
    directories: tuple[Directory, ...] = ()
    services: tuple[Service, ...] = ()
    sysctl: tuple[Sysctl, ...] = ()
    users: tuple[User, ...] = ()
    commands: tuple[Command, ...] = ()
    patches: tuple[Patch, ...] = ()
    deploy: tuple[Deploy, ...] = ()
    patch_baseline: PatchBaseline | None = Field(
        None,
        description="Which pending updates `patchring patches lock` approves for the hosts this "
        "policy selects; rollouts then install exactly the locked versions.",
    )
    checks: tuple[RepoPath, ...] = Field(
        (),
        description="Your own pytest-testinfra test files (repository-relative paths, e.g. "
        "checks/test_agent.py), run by `verify` against the hosts this policy selects.",
    )
