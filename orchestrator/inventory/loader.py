"""Load an inventory (one YAML file or a folder of them) into one merged, located `Inventory`.

The sections `ssh`, `vars`, `groups`, `rings` and `hosts` of every file are merged; a name (or
the ssh section) defined in two files is an error naming both. Relative `identity_file` and
`known_hosts` paths resolve against the folder of the file that sets them. Every problem in every
file is collected. Reads only through a `ProjectSource` (an inventory outside the project is read
through a `WorktreeSource` of its own folder); never imports the CLI, pyinfra or paramiko.
"""

from __future__ import annotations

import os.path
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.inventory.sshconfig import read_ssh_config
from orchestrator.inventory.sudo import read_sudo_passwords
from orchestrator.model.desired import VarValue
from orchestrator.model.exceptions import ExceptionRules
from orchestrator.model.inventory import (
    HostEntry,
    Inventory,
    InventoryDocument,
    InventoryGroup,
    InventoryHost,
    InventoryRing,
    RingEntry,
    RolloutEngineSettings,
    RunSettings,
    SshSettings,
    Webhook,
    password_source,
)
from orchestrator.model.jump import SshConfigEntry
from orchestrator.model.patching import PatchingSettings
from orchestrator.model.ring import RingSettings
from orchestrator.policy.loader import read_located
from orchestrator.policy.projectsource import (
    NotRegularFileError,
    PathOutsideRootError,
    ProjectSource,
    WorktreeSource,
    check_relative,
)
from orchestrator.policy.secretvars import marked_texts, misplaced_secrets
from orchestrator.policy.validation import check_var_names, suggest, validate_located
from orchestrator.policy.yamlsource import LocatedYaml, YamlPath
from orchestrator.source import SourceLocation

INVENTORY_DEFAULT = "inventory"


@dataclass(frozen=True)
class _Files:
    """Where the inventory files are read from and how their locations are printed."""

    reader: ProjectSource
    paths: tuple[str, ...]
    external: bool

    def label(self, path: str) -> str:
        if self.external and self.reader.root_dir is not None:
            return (self.reader.root_dir / path).as_posix()
        return path


def _inside(path: Path, root: Path | None) -> str | None:
    if root is None:
        return None
    for candidate in (path, path.resolve()):
        if candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix() or "."
    return None


def _find_files(source: ProjectSource, inventory: str) -> _Files | Diagnostic:
    if PurePosixPath(inventory).is_absolute() or Path(inventory).is_absolute():
        absolute = Path(os.path.normpath(inventory))
        relative = _inside(absolute, source.root_dir)
        if relative is None:
            folder = absolute if absolute.is_dir() else absolute.parent
            reader = WorktreeSource(folder)
            paths = reader.list_files(".") if absolute.is_dir() else [absolute.name]
            return _Files(reader, tuple(paths), external=True)
        inventory = relative
    try:
        paths = source.list_files(inventory)
    except PathOutsideRootError as error:
        hint = "; give an absolute path for an inventory outside the project"
        return Diagnostic(SourceLocation(inventory), error.message + hint)
    if paths:
        return _Files(source, tuple(paths), external=False)
    try:
        source.read_text(inventory)
    except NotRegularFileError as error:
        return Diagnostic(SourceLocation(inventory), f"cannot read the file: {error.strerror}")
    except (OSError, ValueError):
        message = "no inventory found (neither a file nor a folder of .yml or .yaml files)"
        return Diagnostic(SourceLocation(inventory), message)
    return _Files(source, (inventory,), external=False)


def _ssh_path(value: str | None, folder: str, root: Path | None) -> str | None:
    if value is None or value.startswith(("/", "~")):
        return value
    joined = posixpath.normpath(posixpath.join(folder, value))
    return os.path.normpath(root / joined) if root is not None else joined


_PATH_KEYS = ("identity_file", "known_hosts", "sudo_password_file", "config_file")


def _ssh_with_paths(ssh: SshSettings | None, files: _Files, path: str) -> SshSettings | None:
    """`ssh` with the relative paths it gives made absolute from the file's folder (keys it
    does not give stay unset, so layering still sees which keys each level sets)."""
    if ssh is None:
        return None
    folder, root = posixpath.dirname(path), files.reader.root_dir
    paths = {
        key: _ssh_path(getattr(ssh, key), folder, root)
        for key in _PATH_KEYS
        if getattr(ssh, key) is not None
    }
    return ssh.model_copy(update=paths)


class _Merger:
    """Merges validated inventory documents in file order, noting names defined twice."""

    def __init__(self) -> None:
        self.problems: list[Diagnostic] = []
        self.ssh: SshSettings | None = None
        self.ssh_location: SourceLocation | None = None
        self.ssh_config_where: tuple[SourceLocation, SourceLocation] | None = None
        self.ssh_config: dict[str, SshConfigEntry] = {}
        self.vars: dict[str, VarValue] = {}
        self.groups: dict[str, InventoryGroup] = {}
        self.rings: dict[str, InventoryRing] = {}
        self.hosts: dict[str, InventoryHost] = {}
        self.ring_refs: dict[str, SourceLocation] = {}
        self.secret_vars: dict[str, SourceLocation] = {}
        self.patching: tuple[PatchingSettings, SourceLocation] | None = None
        self.exception_rules: tuple[ExceptionRules, SourceLocation] | None = None
        self.security_data: tuple[str, SourceLocation] | None = None
        self.settings: tuple[RunSettings, SourceLocation] | None = None
        self.password_sources: dict[str, SourceLocation] = {}
        self.notifications: dict[str, Webhook] = {}
        self.notification_where: dict[str, SourceLocation] = {}
        self.rollout: tuple[RolloutEngineSettings, SourceLocation] | None = None

    def duplicate(self, where: SourceLocation, what: str, first: SourceLocation) -> None:
        self.problems.append(Diagnostic(where, f"duplicate {what} (first defined at {first})"))

    def add(self, doc: InventoryDocument, located: LocatedYaml, files: _Files, path: str) -> None:
        if doc.ssh is not None:
            self._add_ssh(doc.ssh, located, files, path)
        for index, name in enumerate(doc.secret_vars):
            self.secret_vars.setdefault(name, located.value_location(("secret_vars", index)))
        for name, value in located_vars(located, ("vars",), doc.vars).items():
            if name in self.vars:
                self.duplicate(
                    located.key_location(("vars", name)), f"var '{name}'", self.vars[name].location
                )
            else:
                self.vars[name] = value
        for name, group in doc.groups.items():
            where = located.key_location(("groups", name))
            if name in self.groups:
                self.duplicate(where, f"group '{name}'", self.groups[name].location)
                continue
            group_vars = located_vars(located, ("groups", name, "vars"), group.vars)
            ssh = _ssh_with_paths(group.ssh, files, path)
            self.groups[name] = InventoryGroup(
                name=name, vars=group_vars, ssh=ssh, site=group.site, location=where
            )
            self._note_password(ssh, located, ("groups", name, "ssh"))
        for index, ring in enumerate(doc.rings):
            self._add_ring(
                ring.model_copy(update={"ssh": _ssh_with_paths(ring.ssh, files, path)}),
                located,
                index,
            )
        for name, host in doc.hosts.items():
            self._add_host(
                name,
                host.model_copy(update={"ssh": _ssh_with_paths(host.ssh, files, path)}),
                located,
            )
        self._add_patching(doc, located)
        for index, hook in enumerate(doc.notifications):
            where = located.value_location(("notifications", index, "name"))
            if hook.name in self.notifications:
                self.duplicate(where, f"webhook '{hook.name}'", self.notification_where[hook.name])
                continue
            url_file = _ssh_path(hook.url_file, posixpath.dirname(path), files.reader.root_dir)
            self.notifications[hook.name] = hook.model_copy(update={"url_file": url_file})
            self.notification_where[hook.name] = where
        if doc.rollout is not None:  # set once across all files
            where = located.key_location(("rollout",))
            if self.rollout is not None:
                self.duplicate(where, "rollout settings", self.rollout[1])
            else:
                self.rollout = (doc.rollout, where)

    def _add_patching(self, doc: InventoryDocument, located: LocatedYaml) -> None:
        """`patching:`, `exceptions:`, `settings:` and `security_data:` are set once across all
        files."""
        if doc.patching is not None:
            where = located.key_location(("patching",))
            if self.patching is not None:
                self.duplicate(where, "patching section", self.patching[1])
            else:
                self.patching = doc.patching, where
        if doc.exceptions is not None:
            where = located.key_location(("exceptions",))
            if self.exception_rules is not None:
                self.duplicate(where, "exceptions section", self.exception_rules[1])
            else:
                self.exception_rules = doc.exceptions, where
        if doc.settings is not None:
            where = located.key_location(("settings",))
            if self.settings is not None:
                self.duplicate(where, "settings section", self.settings[1])
            else:
                self.settings = doc.settings, where
        if doc.security_data is not None:
            where = located.value_location(("security_data",))
            if self.security_data is not None:
                self.duplicate(where, "security_data", self.security_data[1])
                return
            try:
                check_relative(doc.security_data)
            except PathOutsideRootError as error:
                self.problems.append(Diagnostic(where, f"security_data: {error.message}"))
                return
            self.security_data = doc.security_data, where

    def _add_ssh(self, ssh: SshSettings, located: LocatedYaml, files: _Files, path: str) -> None:
        where = located.key_location(("ssh",))
        if self.ssh_location is not None:
            self.duplicate(where, "ssh section", self.ssh_location)
            return
        self.ssh, self.ssh_location = _ssh_with_paths(ssh, files, path), where
        self._note_password(self.ssh, located, ("ssh",))
        if ssh.config_file is not None:
            key = located.key_location(("ssh", "config_file"))
            self.ssh_config_where = key, located.value_location(("ssh", "config_file"))

    def _note_password(self, ssh: SshSettings | None, located: LocatedYaml, at: YamlPath) -> None:
        """Remember where each sudo password source is named (read once, after merging)."""
        source = password_source(ssh) if ssh is not None else None
        if source is not None:
            key = "sudo_password_env" if source.startswith("env:") else "sudo_password_file"
            self.password_sources.setdefault(source, located.value_location((*at, key)))

    def read_ssh_config(self) -> None:
        """Look every host's address and jump host up in `ssh: config_file:`; an unreadable
        file or a bad value is an error at the setting, each ignored option one warning."""
        if self.ssh is None or self.ssh.config_file is None or self.ssh_config_where is None:
            return
        key, value = self.ssh_config_where
        path = self.ssh.config_file
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self.problems.append(Diagnostic(value, f"cannot read ssh config_file {path}: {reason}"))
            return
        names = [host.address for host in self.hosts.values()]
        names += [hop.address for hop in self.ssh.jump_host]
        reading = read_ssh_config(text, names)
        for problem in reading.problems:
            self.problems.append(Diagnostic(value, f"ssh config_file {path}: {problem}"))
        for option in reading.ignored:
            message = f"ssh config_file {path}: option '{option}' is not used by patchring; ignored"
            self.problems.append(Diagnostic(key, message, severity="warning"))
        self.ssh_config = reading.entries

    def _add_ring(self, ring: RingEntry, located: LocatedYaml, index: int) -> None:
        where = located.value_location(("rings", index, "name"))
        if ring.name in self.rings:
            self.duplicate(where, f"ring '{ring.name}'", self.rings[ring.name].location)
            return
        self._check_health_names(ring, located, index)
        self._note_password(ring.ssh, located, ("rings", index, "ssh"))
        ring_vars = located_vars(located, ("rings", index, "vars"), ring.vars)
        settings = {name: getattr(ring, name) for name in RingSettings.model_fields}
        self.rings[ring.name] = InventoryRing(
            name=ring.name,
            description=ring.description,
            vars=ring_vars,
            ssh=ring.ssh,
            location=where,
            **settings,
        )

    def _check_health_names(self, ring: RingEntry, located: LocatedYaml, index: int) -> None:
        """Health results are keyed by check name, so names are unique within a ring."""
        seen: dict[str, SourceLocation] = {}
        for number, check in enumerate(ring.gate.health_checks):
            path: YamlPath = ("rings", index, "gate", "health_checks", number, "name")
            where = located.value_location(path)
            if check.name in seen:
                self.duplicate(where, f"health check '{check.name}'", seen[check.name])
            else:
                seen[check.name] = where

    def _add_host(self, name: str, host: HostEntry, located: LocatedYaml) -> None:
        where = located.key_location(("hosts", name))
        if name in self.hosts:
            self.duplicate(where, f"host '{name}'", self.hosts[name].location)
            return
        host_vars = located_vars(located, ("hosts", name, "vars"), host.vars)
        self.hosts[name] = InventoryHost(
            name=name,
            address=host.address,
            port=host.port,
            ring=host.ring,
            groups=host.groups,
            vars=host_vars,
            ssh=host.ssh,
            site=host.site,
            location=where,
        )
        self._note_password(host.ssh, located, ("hosts", name, "ssh"))
        if host.ring is not None:
            self.ring_refs[name] = located.value_location(("hosts", name, "ring"))

    def check_rings(self) -> None:
        if not self.rings:
            return
        for name, where in self.ring_refs.items():
            ring = self.hosts[name].ring or ""
            if ring not in self.rings:
                hint = suggest(ring, self.rings) or f" (defined rings: {', '.join(self.rings)})"
                self.problems.append(Diagnostic(where, f"unknown ring '{ring}'{hint}"))


def located_vars(
    located: LocatedYaml, prefix: YamlPath, values: dict[str, Any]
) -> dict[str, VarValue]:
    """Variables with the location of each value (and its texts tagged secret)."""
    return {
        name: VarValue(
            value=value,
            location=located.value_location((*prefix, name)),
            secrets=marked_texts(located, (*prefix, name), value),
        )
        for name, value in values.items()
    }


def _var_problems(located: LocatedYaml) -> list[Diagnostic]:
    """Variable names in every vars section, checked on the raw data so they are reported even
    when the file has other problems."""
    sections: list[YamlPath] = [("vars",)]
    sections += [("groups", name, "vars") for name in located.mapping_at(("groups",))]
    sections += [("hosts", name, "vars") for name in located.mapping_at(("hosts",))]
    rings = located.data.get("rings") if isinstance(located.data, dict) else None
    sections += [
        ("rings", index, "vars") for index in range(len(rings) if isinstance(rings, list) else 0)
    ]
    found: list[Diagnostic] = misplaced_secrets(located, sections)
    for path in sections:
        found += check_var_names(located, path, located.mapping_at(path))
    return found


def collect_inventory(
    source: ProjectSource, inventory: str = INVENTORY_DEFAULT
) -> tuple[Inventory | None, list[Diagnostic]]:
    """The merged inventory (None when any file has an error) and every problem found
    (warnings alone still give the inventory)."""
    files = _find_files(source, inventory)
    if isinstance(files, Diagnostic):
        return None, [files]
    merger = _Merger()
    for path in files.paths:
        located, problems = read_located(files.reader, path, "inventory", files.label(path))
        merger.problems += problems
        if located is None:
            continue
        doc, problems = validate_located(InventoryDocument, located)
        merger.problems += problems + _var_problems(located)
        if doc is not None:
            merger.add(doc, located, files, path)
    merger.check_rings()
    merger.read_ssh_config()
    passwords = read_sudo_passwords(merger.password_sources, files.reader, merger.problems)
    if any(problem.is_error for problem in merger.problems):
        return None, merger.problems
    return Inventory(
        ssh=merger.ssh or SshSettings.model_validate({}),
        ssh_location=merger.ssh_location,
        ssh_config=merger.ssh_config,
        vars=merger.vars,
        groups=merger.groups,
        rings=tuple(merger.rings.values()),
        hosts=merger.hosts,
        files=tuple(files.label(path) for path in files.paths),
        secret_vars=merger.secret_vars,
        patching=merger.patching[0] if merger.patching else PatchingSettings(),
        exception_rules=merger.exception_rules[0] if merger.exception_rules else ExceptionRules(),
        security_data=merger.security_data[0] if merger.security_data else None,
        security_data_location=merger.security_data[1] if merger.security_data else None,
        sudo_passwords=passwords,
        notifications=tuple(merger.notifications.values()),
        settings=merger.settings[0] if merger.settings else RunSettings(),
        rollout=merger.rollout[0] if merger.rollout else RolloutEngineSettings(),
    ), merger.problems


def load_inventory(source: ProjectSource, inventory: str = INVENTORY_DEFAULT) -> Inventory:
    """The merged inventory; raises one ValidationError listing every problem in every file."""
    result, problems = collect_inventory(source, inventory)
    if result is None:
        raise ValidationError(problems)
    return result
