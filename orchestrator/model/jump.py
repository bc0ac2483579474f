"""Jump hosts (OpenSSH's ProxyJump): how the inventory writes them and how a host reaches them.

`ssh: jump_host:` takes one hop `[user@]host[:port]` or several, comma-separated in one string
(as `ssh -J` does) or as a YAML list; an IPv6 address is written in brackets (`[fd00::1]:2222`).
Each hop is validated like any address, user and port of the inventory, so a hop can never carry
an option, a space or a shell character into an ssh_config or an ssh command line.
`JumpHost` is a hop as written (user and port may be left out); `JumpHop` is one resolved for a
host (user, port and key filled in), as `HostTarget.jump_hosts` carries it.
Imports only pydantic and the package's model grammar; no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from orchestrator.model.base import Frozen
from orchestrator.model.grammar import check_address, check_login, shown

HOP_FORM = "[user@]host[:port]"
MAX_HOPS = 8


class JumpHost(Frozen):
    """One hop as the inventory (or an ssh_config's ProxyJump) writes it."""

    address: str
    user: str | None = None
    port: int | None = None

    def text(self) -> str:
        """The hop in ProxyJump's form."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{host}{port}"


class JumpHop(Frozen):
    """One hop on the way to a host, resolved: every value the connection needs."""

    address: str
    port: int = 22
    user: str = "root"
    identity_file: str | None = None

    def text(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{host}:{self.port}"


def parse_jump_host(text: str) -> JumpHost:
    """One hop `[user@]host[:port]`; raises ValueError saying what is wrong with it."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"jump host '{shown(text)}' {reason}; write {HOP_FORM}")

    user: str | None = None
    rest = text.strip()
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        try:
            check_login(user)
        except ValueError:
            raise bad(f"has an invalid user '{shown(user)}'") from None
    port_text: str | None = None
    if rest.startswith("["):
        address, closed, tail = rest[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise bad("has an unclosed or misplaced '[' ']'")
        port_text = tail[1:] if tail else None
    elif rest.count(":") == 1:
        address, _, port_text = rest.partition(":")
    else:
        address = rest
    try:
        check_address(address)
    except ValueError:
        raise bad(
            f"has an invalid host '{shown(address)}' (not an IP address or a DNS name)"
        ) from None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise bad(f"has an invalid port '{shown(port_text)}' (not 1 to 65535)")
        port = int(port_text)
    return JumpHost(address=address, user=user, port=port)


def parse_jump_hosts(value: Any) -> tuple[JumpHost, ...]:
    """Hops from a comma-separated string or a list of strings (each may hold commas too)."""
    if isinstance(value, JumpHost):
        return (value,)
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("jump_host must be a string or a list of strings")
    hops: list[JumpHost] = []
    for item in items:
        if isinstance(item, JumpHost):
            hops.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError("jump_host must be a string or a list of strings")
        parts = [part.strip() for part in item.split(",")]
        if any(not part for part in parts):
            raise ValueError(f"jump_host '{shown(item)}' has an empty hop")
        hops += [parse_jump_host(part) for part in parts]
    if len(hops) > MAX_HOPS:
        raise ValueError(f"jump_host has {len(hops)} hops; at most {MAX_HOPS} are supported")
    return tuple(hops)


JumpHosts = Annotated[tuple[JumpHost, ...], BeforeValidator(parse_jump_hosts)]


class SshConfigEntry(Frozen):
    """What an ssh_config says for one name (a host's address or a hop's host): only the
    options patchring understands, validated like inventory values."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    jump_hosts: tuple[JumpHost, ...] | None = None
    """None: the config names no ProxyJump; (): `ProxyJump none`."""


def resolve_hops(
    hops: tuple[JumpHost, ...],
    entries: dict[str, SshConfigEntry],
    user: str,
    identity_file: str | None,
) -> tuple[JumpHop, ...]:
    """Each hop with its user, port and key: the hop's own, then the ssh_config's for its host,
    then the host's user and key (port 22)."""
    resolved: list[JumpHop] = []
    for hop in hops:
        entry = entries.get(hop.address, SshConfigEntry())
        resolved.append(
            JumpHop(
                address=entry.hostname or hop.address,
                port=hop.port or entry.port or 22,
                user=hop.user or entry.user or user,
                identity_file=entry.identity_file or identity_file,
            )
        )
    return tuple(resolved)
