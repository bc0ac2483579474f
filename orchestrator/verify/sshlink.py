"""OpenSSH for verification: one ssh config for a run, batches over multiplexed connections.

`SshConfig.write(targets, folder)` writes one `Host <address>` block per target: its user, port
and key, the inventory's known_hosts with `StrictHostKeyChecking yes` (host keys are always
checked; this is why we use OpenSSH and never paramiko), `BatchMode yes` (never a prompt),
`ConnectTimeout`, `ServerAliveInterval`/`CountMax` (a host that stops answering mid-way ends the
session instead of hanging it) and a `ControlMaster` per host, so only the first session pays for
the handshake. The same file serves testinfra's ssh backend (`--ssh-config`) for users' tests.
A target with jump hosts gets `ProxyJump`, and each jump host that is no target a block of its own
(ssh reaches a jump host with `-F` this same file), so its host key is checked the same way.
Every value is quoted by OpenSSH's rules (`ssh_config_value`; ProxyJump, which OpenSSH takes
verbatim, is only ever addresses, logins and ports, checked again), and one that cannot be quoted
(a newline, a NUL, `${`) is refused, so inventory text can never add a directive; addresses are
checked again here and passed after `--`, so none can be read as an option.
`SshLink.run_batch` runs a batch of commands (see `batch.py`) in one session under a time limit.
Imports subprocess and the package's model and `verify.batch`; never testinfra.
"""

from __future__ import annotations

import math
import secrets
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from orchestrator.model.desired import HostTarget
from orchestrator.model.grammar import check_address, check_login
from orchestrator.model.jump import JumpHop
from orchestrator.sudo import sudo_command, sudo_input, sudo_refusal
from orchestrator.verify.batch import (
    Answer,
    BatchOutputError,
    build_batch_script,
    parse_batch_output,
)

SERVER_ALIVE_COUNT = 3
CONTROL_PERSIST = 120  # seconds; `close` ends the masters before that


class LinkError(RuntimeError):
    """The host could not be reached, or stopped answering."""


class SshConfigValueError(ValueError):
    """A value that cannot be written into an ssh_config safely."""


def ssh_config_value(value: str, tokens: bool = False) -> str:
    """`value` as one ssh_config argument: in double quotes, with `\\` and `\"` escaped
    (OpenSSH's argv_split); `%` doubled where the directive expands `%` tokens (`tokens`).
    Raises SshConfigValueError for what no quoting can carry: line breaks, NUL and other
    control characters, and `${` (environment expansion has no escape)."""
    if any(not char.isprintable() for char in value):
        raise SshConfigValueError(f"{value!r} cannot be written into an ssh_config")
    if "${" in value:
        raise SshConfigValueError(f"{value!r} contains '${{', which OpenSSH would expand")
    if tokens:
        value = value.replace("%", "%%")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class SshConfig:
    path: Path
    addresses: tuple[str, ...]

    @classmethod
    def write(cls, targets: Sequence[HostTarget], folder: Path) -> SshConfig:
        """The ssh config for `targets` in `folder` (also the home of the control sockets).
        The first target wins when two share an address."""
        blocks = ["# Written by patchring verify for one run; removed after it."]
        seen: dict[str, HostTarget] = {}
        for target in targets:
            if seen.setdefault(target.address, target) is target:
                blocks.append(_host_block(target, folder))
        blocks += _jump_blocks(targets, set(seen))
        path = folder / "ssh_config"
        path.write_text("\n".join(blocks) + "\n")
        return cls(path, tuple(seen))

    def close(self) -> None:
        """End every control master of the run (each exits at once: `-O exit`)."""

        def close_one(address: str) -> None:
            argv = ["ssh", "-F", str(self.path), "-O", "exit", "--", address]
            try:
                subprocess.run(argv, capture_output=True, timeout=10, check=False)
            except (OSError, subprocess.TimeoutExpired):
                return

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(self.addresses)))) as pool:
            list(pool.map(close_one, self.addresses))


def _host_block(target: HostTarget, folder: Path) -> str:
    """One `Host` block. Raises SshConfigValueError for a value no config may hold."""
    try:  # validated when the inventory was loaded; checked again where it matters most
        address, user = check_address(target.address), check_login(target.user)
    except ValueError as error:
        raise SshConfigValueError(str(error)) from None
    if not 0 < target.port < 65536:
        raise SshConfigValueError(f"port {target.port} is not between 1 and 65535")
    alive = max(1, math.ceil(target.connect_timeout))
    lines = [
        f"Host {ssh_config_value(address)}",
        f"  HostName {ssh_config_value(address, tokens=True)}",
        f"  Port {target.port}",
        f"  User {ssh_config_value(user, tokens=True)}",
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        f"  ConnectTimeout {max(1, math.ceil(target.connect_timeout))}",
        f"  ServerAliveInterval {alive}",
        f"  ServerAliveCountMax {SERVER_ALIVE_COUNT}",
        "  ControlMaster auto",
        f"  ControlPath {ssh_config_value(str(folder).replace('%', '%%') + '/cm-%C')}",
        f"  ControlPersist {CONTROL_PERSIST}",
        "  LogLevel ERROR",
    ]
    if target.identity_file:
        identity = ssh_config_value(target.identity_file, tokens=True)
        lines += [f"  IdentityFile {identity}", "  IdentitiesOnly yes"]
    if target.known_hosts:
        known = ssh_config_value(target.known_hosts, tokens=True)
        lines.append(f"  UserKnownHostsFile {known}")
    if target.jump_hosts:
        # OpenSSH (9.2) takes ProxyJump's value verbatim, quotes included: it goes unquoted,
        # which is safe as each hop is an address, a login and a port, checked again here.
        lines.append(f"  ProxyJump {_proxy_jump(target.jump_hosts)}")
    return "\n".join(lines)


def _proxy_jump(hops: Sequence[JumpHop]) -> str:
    """ProxyJump's value: `user@host:port` per hop, comma-separated (re-checked here)."""
    try:
        for hop in hops:
            check_address(hop.address)
            check_login(hop.user)
    except ValueError as error:
        raise SshConfigValueError(str(error)) from None
    if any(not 0 < hop.port < 65536 for hop in hops):
        raise SshConfigValueError("a jump host's port is not between 1 and 65535")
    return ",".join(hop.text() for hop in hops)


def _jump_blocks(targets: Sequence[HostTarget], written: set[str]) -> list[str]:
    """A `Host` block per jump host that is not a target itself: ssh reaches a jump host with
    `-F` this same file, so its host key is checked, with its key and the timeouts, too.
    A hop's user and port come from ProxyJump; the first target naming the hop sets the rest."""
    blocks: list[str] = []
    for target in targets:
        for hop in target.jump_hosts:
            if hop.address in written:
                continue
            written.add(hop.address)
            alive = max(1, math.ceil(target.connect_timeout))
            lines = [
                f"Host {ssh_config_value(check_address(hop.address))}",
                "  BatchMode yes",
                "  StrictHostKeyChecking yes",
                f"  ConnectTimeout {alive}",
                f"  ServerAliveInterval {alive}",
                f"  ServerAliveCountMax {SERVER_ALIVE_COUNT}",
                "  LogLevel ERROR",
            ]
            if hop.identity_file:
                identity = ssh_config_value(hop.identity_file, tokens=True)
                lines += [f"  IdentityFile {identity}", "  IdentitiesOnly yes"]
            if target.known_hosts:
                known = ssh_config_value(target.known_hosts, tokens=True)
                lines.append(f"  UserKnownHostsFile {known}")
            blocks.append("\n".join(lines))
    return blocks


@dataclass
class SshLink:
    """Sessions to one host through the run's ssh config; counts the sessions it opened."""

    config: SshConfig
    target: HostTarget
    sessions: int = 0

    def run_batch(self, commands: Sequence[str]) -> list[Answer]:
        """Run `commands` in one session; their answers in order. Raises LinkError."""
        marker = "patchring-" + secrets.token_hex(8)
        script = sudo_command(build_batch_script(commands, marker), self.target)
        argv = ["ssh", "-F", str(self.config.path), "-T", "--", self.target.address, script]
        password = sudo_input(self.target)
        # Standard input is the password line or empty, always through `input`: gevent's
        # monkey-patched subprocess.run refuses `stdin` next to `input`, even a None one.
        feed = (password or "").encode()
        timeout = self.target.command_timeout
        self.sessions += 1
        try:
            proc = subprocess.run(
                argv, capture_output=True, timeout=timeout, check=False, input=feed
            )
        except subprocess.TimeoutExpired:
            raise LinkError(f"no answer within {timeout:g} s") from None
        except OSError as error:
            raise LinkError(f"cannot run ssh: {error}") from None
        try:
            return parse_batch_output(proc.stdout, marker, len(commands))
        except BatchOutputError as error:
            said = proc.stderr.decode(errors="replace").strip()
            refused = sudo_refusal(self.target, said)
            if refused is not None:
                raise LinkError(refused) from None
            reason = said.splitlines()[-1] if said else str(error)
            raise LinkError(f"{reason} (ssh exit status {proc.returncode})") from None
