"""An OpenSSH ssh_config (`ssh: config_file:`) read for the options patchring understands.

For each name looked up (a host's address, or a jump host's), the config gives `HostName`,
`User`, `Port`, `IdentityFile` and `ProxyJump`, by OpenSSH's rules (first value wins, `Host`
patterns with `*`, `?` and `!`), as paramiko's `SSHConfig` parses them. Every other option is
dropped before parsing and named once, so the loader can warn about it; a `Match` block is
dropped whole (it may run commands: `Match exec`). Values are validated like the inventory's
own (an address, a login, a port, a local path, jump hosts), so a config cannot carry an option
or a shell character further than an inventory could.
Imports paramiko's config parser only (pure text parsing, no I/O, no connection); never pyinfra.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from paramiko.config import SSHConfig

from orchestrator.model.grammar import check_address, check_local_path, check_login, shown
from orchestrator.model.jump import SshConfigEntry, parse_jump_hosts

UNDERSTOOD = ("host", "hostname", "user", "port", "identityfile", "proxyjump")
_KEYWORD = re.compile(r"\s*([A-Za-z]+)\s*(?:=|\s|$)")


@dataclass
class SshConfigReading:
    """What one ssh_config says: entries per name looked up, problems with its values (each
    names the `Host` it was looked up for), and the options it holds that were ignored."""

    entries: dict[str, SshConfigEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _understood_text(text: str, ignored: dict[str, str]) -> str:
    """The config with only `Host` lines and understood options; others noted in `ignored`
    (lower-case keyword -> the spelling first seen)."""
    kept: list[str] = []
    in_match = False
    for line in text.splitlines():
        found = _KEYWORD.match(line)
        if found is None or line.lstrip().startswith("#"):
            continue
        spelled = found.group(1)
        keyword = spelled.lower()
        if keyword == "host":
            in_match = False
        elif keyword == "match":
            in_match = True
            ignored.setdefault(keyword, spelled)
            continue
        if in_match:
            continue
        if keyword in UNDERSTOOD:
            kept.append(line)
        else:
            ignored.setdefault(keyword, spelled)
    return "\n".join(kept) + "\n"


def read_ssh_config(text: str, names: Iterable[str]) -> SshConfigReading:
    """Look up `names` (and the jump hosts their ProxyJump names) in the config `text`."""
    ignored: dict[str, str] = {}
    reading = SshConfigReading()
    try:
        config = SSHConfig.from_text(_understood_text(text, ignored))
    except Exception as error:  # paramiko raises bare exceptions for malformed lines
        reading.problems.append(f"cannot parse it: {error}")
        return reading
    reading.ignored = list(ignored.values())
    pending = list(dict.fromkeys(names))
    while pending:
        name = pending.pop(0)
        if name in reading.entries:
            continue
        entry = _entry(config, name, reading.problems)
        reading.entries[name] = entry
        pending += [hop.address for hop in entry.jump_hosts or ()]
    return reading


def _entry(config: SSHConfig, name: str, problems: list[str]) -> SshConfigEntry:
    try:
        found = config.lookup(name)
    except Exception as error:  # a bad token (`%x`) in a value, say
        problems.append(f"Host '{shown(name)}': {error}")
        return SshConfigEntry()
    values: dict[str, object] = {}

    def checked(option: str, key: str, value: str, check: object) -> None:
        try:
            values[key] = check(value)  # type: ignore[operator]
        except ValueError as error:
            problems.append(f"Host '{shown(name)}': {option} {error}")

    hostname = found.get("hostname")
    if isinstance(hostname, str) and hostname != name:
        checked("HostName", "hostname", hostname, check_address)
    if isinstance(found.get("user"), str):
        checked("User", "user", found["user"], check_login)
    if isinstance(found.get("port"), str):
        checked("Port", "port", found["port"], _port)
    identity = found.get("identityfile")
    if isinstance(identity, list) and identity:
        checked("IdentityFile", "identity_file", identity[0], check_local_path)
    jump = found.get("proxyjump")
    if isinstance(jump, str):
        none = jump.strip().lower() == "none"
        checked("ProxyJump", "jump_hosts", jump, lambda v: () if none else parse_jump_hosts(v))
    return SshConfigEntry.model_validate(values)


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"'{shown(value)}' is not a port (1 to 65535)")
    return int(value)
