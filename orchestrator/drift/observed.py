"""What one probe saw on a host, as plain frozen data."""

from __future__ import annotations

from pydantic import Field

from orchestrator.model.base import Frozen


class ObservedPackage(Frozen):
    name: str
    version: str | None = None
    status: str = "not-installed"  # dpkg's "want ok state" triple, e.g. "install ok installed"
    candidate: str | None = None

    @property
    def installed(self) -> bool:
        return self.status.endswith(" installed")

    @property
    def held(self) -> bool:
        return self.status.startswith("hold ")

    @property
    def broken(self) -> bool:
        """Unpacked or configured halfway: dpkg left it in a state only a reinstall mends."""
        state = self.status.rsplit(" ", 1)[-1]
        return state in {"half-configured", "half-installed", "unpacked", "triggers-awaited"}


class ObservedPath(Frozen):
    path: str
    kind: str = "missing"  # "file", "directory", "missing", or "other"
    sha256: str | None = None
    owner: str | None = None
    group: str | None = None
    mode: str | None = None  # octal digits as stat prints them, e.g. "640"
    content: bytes | None = Field(None, repr=False)  # when the hash differs (for diffs)


class ObservedService(Frozen):
    name: str
    load_state: str = "not-found"
    active_state: str = "inactive"
    unit_file_state: str = ""


class ObservedUser(Frozen):
    name: str
    exists: bool = False
    uid: int | None = None
    group: str | None = None
    groups: tuple[str, ...] = ()
    home: str | None = None
    shell: str | None = None
    home_exists: bool = False
    password_digest: str | None = None  # sha256 of the /etc/shadow field, never the field


class ObservedGroup(Frozen):
    name: str
    exists: bool = False
    gid: int | None = None


class ObservedSysctl(Frozen):
    key: str
    value: str | None = None
    persist_file: str | None = None
    persisted_lines: tuple[str, ...] = ()  # the lines of persist_file that set the key


class Observation(Frozen):
    """Everything one probe learned about one host."""

    packages: dict[str, ObservedPackage] = {}
    paths: dict[str, ObservedPath] = {}
    services: dict[str, ObservedService] = {}
    users: dict[str, ObservedUser] = {}
    groups: dict[str, ObservedGroup] = {}
    sysctls: dict[str, ObservedSysctl] = {}
    commands_satisfied: dict[str, bool] = {}
    # unit -> what its marker says (when and why the restart was due): a restart recorded on the
    # host by an apply that did not get to carry it out.
    pending_restarts: dict[str, str] = {}
    offered: dict[str, bool] = {}
    """`package=version` -> whether apt offers it, for patches the host needs (see
    `drift.availability`)."""
