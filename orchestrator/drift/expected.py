"""The concrete things on disk a resource stands for: one place that the probe, the comparison
and the compiler all read, so they cannot disagree about paths, contents or modes.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import Field

from orchestrator.model.base import Frozen
from orchestrator.model.desired import Resource
from orchestrator.model.policy import AptRepository, Directory, File, FileEdit, Sysctl, User
from orchestrator.openpgp import is_armored

SYSCTL_PERSIST_FILE = "/etc/sysctl.d/90-patchring.conf"
APT_KEYRING_DIR = "/etc/apt/keyrings"
APT_SOURCES_DIR = "/etc/apt/sources.list.d"
# A restart that a file change makes due is written here on the host before the file changes,
# and removed only once the restart succeeded: it survives a hung host and a killed controller.
PENDING_RESTART_DIR = "/var/lib/patchring/pending-restarts"
RESTART_ID_PREFIX = "restart:"
_SAFE_UNIT = re.compile(r"[A-Za-z0-9@_:\\-][A-Za-z0-9@._:\\-]*")


class ExpectedFile(Frozen):
    """A regular file a resource manages: its exact bytes, or (a key fetched at apply time)
    the URL it comes from and the fingerprint it must hold."""

    path: str
    content: bytes | None = Field(None, repr=False)
    fetch_url: str | None = None
    fingerprint: str | None = None
    owner: str = "root"
    group: str = "root"
    mode: str = "0644"

    @property
    def sha256(self) -> str | None:
        return None if self.content is None else hashlib.sha256(self.content).hexdigest()


def text_of(data: bytes) -> str | None:
    """`data` as UTF-8 text, or None for other bytes (binary files: diffs show hashes)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_text(data: bytes) -> bool:
    return text_of(data) is not None


def _ending_newline(text: str) -> bytes:
    return (text if text.endswith("\n") else text + "\n").encode()


def apt_key_path(repo: AptRepository, data: bytes | None = None) -> str:
    """Where the repository's key is written: `keyring:`, else /etc/apt/keyrings/<name>.asc for
    an armored key, .gpg for a binary one (`data`, the key file's bytes) and a fetched one."""
    if repo.keyring is not None:
        return repo.keyring
    armored = repo.key is not None or (data is not None and is_armored(data))
    return f"{APT_KEYRING_DIR}/{repo.name}.{'asc' if armored else 'gpg'}"


def apt_signed_by(repo: AptRepository, data: bytes | None = None) -> str:
    return repo.signed_by if repo.signed_by is not None else apt_key_path(repo, data)


def apt_sources_path(repo: AptRepository) -> str:
    return f"{APT_SOURCES_DIR}/{repo.name}.{repo.format}"


def apt_sources_text(repo: AptRepository, signed_by: str) -> str:
    """The one-line `.list` entry or the deb822 `.sources` stanza of a repository."""
    components = " ".join(repo.components)
    if repo.format == "list":
        return f"deb [signed-by={signed_by}] {repo.url} {repo.suite} {components}\n"
    return (
        f"Types: deb\nURIs: {repo.url}\nSuites: {repo.suite}\nComponents: {components}\n"
        f"Signed-By: {signed_by}\n"
    )


def apt_repository_files(
    repo: AptRepository, data: bytes | None = None
) -> tuple[ExpectedFile, ...]:
    """The keyring file (unless `signed_by` names one managed elsewhere) and the sources file
    that make an apt repository present; `data` is the key file's bytes (`key_file:`)."""
    signed_by = apt_signed_by(repo, data)
    sources = ExpectedFile(
        path=apt_sources_path(repo), content=apt_sources_text(repo, signed_by).encode()
    )
    keyring = apt_key_path(repo, data)
    if repo.key is not None:
        return ExpectedFile(path=keyring, content=_ending_newline(repo.key)), sources
    if repo.key_file is not None:
        return ExpectedFile(path=keyring, content=data or b""), sources
    if repo.key_url is not None:
        key = ExpectedFile(path=keyring, fetch_url=repo.key_url, fingerprint=repo.fingerprint)
        return key, sources
    return (sources,)


def expected_files(resource: Resource) -> tuple[ExpectedFile, ...]:
    """Regular files a resource manages, with their exact bytes."""
    spec = resource.spec
    if isinstance(spec, AptRepository):
        return apt_repository_files(spec, resource.data)
    if isinstance(spec, File):
        if spec.source is not None:
            content = resource.data or b""
        else:
            text = resource.content if resource.content is not None else spec.content or ""
            content = text.encode()
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
    """The units a file resource (or an edit of a file) restarts when it changes (`restart:`),
    as unit names."""
    spec = resource.spec
    if not isinstance(spec, File | FileEdit):
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
