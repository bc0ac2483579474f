"""OpenSSH for verification: one ssh config for a run, batches over multiplexed connections.

`SshConfig.write(targets, folder)` writes one `Host <address>` block per target: its user, port
and key, the inventory's known_hosts with `StrictHostKeyChecking yes` (host keys are always
checked; this is why we use OpenSSH and never paramiko), `BatchMode yes` (never a prompt),
`ConnectTimeout`, `ServerAliveInterval`/`CountMax` (a host that stops answering mid-way ends the
session instead of hanging it) and a `ControlMaster` per host, so only the first session pays for
the handshake. The same file serves testinfra's ssh backend (`--ssh-config`) for users' tests.
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


def _quoted(value: str) -> str:
    return '"' + value.replace('"', "") + '"'


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
        path = folder / "ssh_config"
        path.write_text("\n".join(blocks) + "\n")
        return cls(path, tuple(seen))

    def close(self) -> None:
        """End every control master of the run (each exits at once: `-O exit`)."""

        def close_one(address: str) -> None:
            argv = ["ssh", "-F", str(self.path), "-O", "exit", address]
            try:
                subprocess.run(argv, capture_output=True, timeout=10, check=False)
            except (OSError, subprocess.TimeoutExpired):
                return

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(self.addresses)))) as pool:
            list(pool.map(close_one, self.addresses))


def _host_block(target: HostTarget, folder: Path) -> str:
    alive = max(1, math.ceil(target.connect_timeout))
    lines = [
        f"Host {target.address}",
        f"  HostName {target.address}",
        f"  Port {target.port}",
        f"  User {target.user}",
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        f"  ConnectTimeout {max(1, math.ceil(target.connect_timeout))}",
        f"  ServerAliveInterval {alive}",
        f"  ServerAliveCountMax {SERVER_ALIVE_COUNT}",
        "  ControlMaster auto",
        f"  ControlPath {_quoted(str(folder / 'cm-%C'))}",
        f"  ControlPersist {CONTROL_PERSIST}",
        "  LogLevel ERROR",
    ]
    if target.identity_file:
        lines += [f"  IdentityFile {_quoted(target.identity_file)}", "  IdentitiesOnly yes"]
    if target.known_hosts:
        lines.append(f"  UserKnownHostsFile {_quoted(target.known_hosts)}")
    return "\n".join(lines)


@dataclass
class SshLink:
    """Sessions to one host through the run's ssh config; counts the sessions it opened."""

    config: SshConfig
    target: HostTarget
    sessions: int = 0

    def run_batch(self, commands: Sequence[str]) -> list[Answer]:
        """Run `commands` in one session; their answers in order. Raises LinkError."""
        marker = "patchring-" + secrets.token_hex(8)
        script = build_batch_script(commands, marker)
        argv = ["ssh", "-F", str(self.config.path), "-T", self.target.address, script]
        timeout = self.target.command_timeout
        self.sessions += 1
        try:
            proc = subprocess.run(
                argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
            )
        except subprocess.TimeoutExpired:
            raise LinkError(f"no answer within {timeout:g} s") from None
        except OSError as error:
            raise LinkError(f"cannot run ssh: {error}") from None
        try:
            return parse_batch_output(proc.stdout, marker, len(commands))
        except BatchOutputError as error:
            said = proc.stderr.decode(errors="replace").strip()
            reason = said.splitlines()[-1] if said else str(error)
            raise LinkError(f"{reason} (ssh exit status {proc.returncode})") from None
