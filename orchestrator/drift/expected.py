"""The concrete things on disk a resource stands for: one place that the probe, the comparison
and the compiler all read, so they cannot disagree about paths, contents or modes.
"""

from __future__ import annotations

import hashlib
import re

from orchestrator.model.base import Frozen
from orchestrator.model.desired import Resource
from orchestrator.model.policy import AptRepository, Directory, File, Sysctl, User

SYSCTL_PERSIST_FILE = "/etc/sysctl.d/90-patchring.conf"
APT_KEYRING_DIR = "/etc/apt/keyrings"
APT_SOURCES_DIR = "/etc/apt/sources.list.d"
# A restart that a file change makes due is written here on the host before the file changes,
# and removed only once the restart succeeded: it survives a hung host and a killed controller.
PENDING_RESTART_DIR = "/var/lib/patchring/pending-restarts"
RESTART_ID_PREFIX = "restart:"
_SAFE_UNIT = re.compile(r"[A-Za-z0-9@_:\\-][A-Za-z0-9@._:\\-]*")


class ExpectedFile(Frozen):
    path: str
    content: str
    owner: str = "root"
    group: str = "root"
    mode: str = "0644"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


def apt_key_path(repo: AptRepository) -> str:
    return f"{APT_KEYRING_DIR}/{repo.name}.asc"


def apt_repository_files(repo: AptRepository) -> tuple[ExpectedFile, ExpectedFile]:
    """The keyring file and the sources file that make an apt repository present."""
    key = repo.key if repo.key.endswith("\n") else repo.key + "\n"
    line = (
        f"deb [signed-by={apt_key_path(repo)}] {repo.url} {repo.suite} "
        f"{' '.join(repo.components)}\n"
    )
    return (
        ExpectedFile(path=apt_key_path(repo), content=key),
        ExpectedFile(path=f"{APT_SOURCES_DIR}/{repo.name}.list", content=line),
    )


def expected_files(resource: Resource) -> tuple[ExpectedFile, ...]:
    """Regular files a resource manages, with their exact content."""
    spec = resource.spec
    if isinstance(spec, AptRepository):
        return apt_repository_files(spec)
    if isinstance(spec, File):
        content = resource.content if resource.content is not None else spec.content or ""
        return (
            ExpectedFile(
                path=spec.path, content=content, owner=spec.owner, group=spec.group, mode=spec.mode
            ),
        )
    return ()


def expected_directory(resource: Resource) -> Directory | None:
    return resource.spec if isinstance(resource.spec, Directory) else None


def normalize_mode(mode: str) -> str:
    """'0640' and '640' name the same mode; stat prints the short form."""
    return format(int(mode, 8), "o")


def unit_name(service: str) -> str:
    return service if "." in service else f"{service}.service"


def restart_units(resource: Resource) -> tuple[str, ...]:
    """The units a file resource restarts when it changes (`restart:`), as unit names."""
    spec = resource.spec
    if not isinstance(spec, File):
        return ()
    return tuple(dict.fromkeys(unit_name(service) for service in spec.restart))


def restart_id(unit: str) -> str:
    """The id of a unit's restart in plans and results, e.g. `restart:acme-agent.service`."""
    return f"{RESTART_ID_PREFIX}{unit}"


def pending_restart_marker(unit: str) -> str:
    """The marker file of a unit's pending restart; a name that is no plain unit name (a slash,
    a leading dot) is replaced by its hash, so a marker never lands outside its folder."""
    name = unit if _SAFE_UNIT.fullmatch(unit) else hashlib.sha256(unit.encode()).hexdigest()
    return f"{PENDING_RESTART_DIR}/{name}"


def normalize_sysctl(value: str) -> str:
    return " ".join(value.split())


def sysctl_persist_file(spec: Sysctl) -> str:
    """The file of /etc/sysctl.d/ that persists a sysctl (its own, or the default)."""
    return spec.file or SYSCTL_PERSIST_FILE


def sysctl_persist_line(spec: Sysctl) -> str:
    """The one line that persists a sysctl in its file."""
    return f"{spec.key} = {normalize_sysctl(spec.value)}"


def sysctl_line_value(line: str) -> str | None:
    """The value of a `key = value` line of a sysctl.d file, normalized; None if no `=`."""
    _key, equals, value = line.partition("=")
    return normalize_sysctl(value) if equals else None


def password_digest(password: str) -> str:
    """What the probe and checks compare a password hash by: its sha256, so the hash in
    /etc/shadow never travels to the controller."""
    return hashlib.sha256(password.encode()).hexdigest()


def user_home(spec: User) -> str:
    """The home directory useradd gives a user (Debian's HOME=/home)."""
    return spec.home or f"/home/{spec.name}"
