"""Jump hosts for the engine's connections: a chain of paramiko clients, each hop reached through
a `direct-tcpip` channel of the one before, the last channel handed to pyinfra as the target's
socket (`sock=`).

Every hop's host key is checked against the host's known_hosts (unknown or changed: refused,
never added), with the host's key and no agent, under the connect timeout, so a missing or
unreachable jump host is a `JumpError` naming the hop, never a prompt or a hang.
Imports paramiko; never pyinfra.
"""

from __future__ import annotations

import os.path
import socket
from dataclasses import dataclass, field

import paramiko

from orchestrator.model.desired import HostTarget
from orchestrator.model.jump import JumpHop


class JumpError(Exception):
    """A jump host could not be reached, refused us, or would not forward to the next hop."""


@dataclass
class JumpChain:
    """The clients of every hop (first hop first), and the channel to the target."""

    clients: list[paramiko.SSHClient] = field(default_factory=list)
    channel: paramiko.Channel | None = None

    def close(self) -> None:
        for client in reversed(self.clients):
            client.close()
        self.clients.clear()


def open_jump_chain(target: HostTarget) -> JumpChain:
    """Connect through `target.jump_hosts` and open a channel to the target's address and
    port. Raises JumpError saying which hop failed and why (the chain is closed then)."""
    chain = JumpChain()
    sock: paramiko.Channel | None = None
    hops = target.jump_hosts
    for number, hop in enumerate(hops, start=1):
        where = f"jump host {hop.text()} (hop {number} of {len(hops)})"
        try:
            client = _connect_hop(hop, target, sock)
            chain.clients.append(client)
            following = hops[number] if number < len(hops) else None
            address, port = (
                (following.address, following.port) if following else (target.address, target.port)
            )
            sock = _forward(client, address, port, target.connect_timeout)
        except JumpError as error:
            chain.close()
            raise JumpError(f"{where}: {error}") from None
        except (paramiko.SSHException, OSError, EOFError) as error:
            chain.close()
            raise JumpError(f"{where}: {_reason(error)}") from None
        except BaseException:  # a timeout of the whole connect: leave no hop open
            chain.close()
            raise
    chain.channel = sock
    return chain


def _connect_hop(
    hop: JumpHop, target: HostTarget, sock: paramiko.Channel | None
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if target.known_hosts:
        client.load_host_keys(os.path.expanduser(target.known_hosts))
    else:
        client.load_system_host_keys()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key_file = os.path.expanduser(hop.identity_file) if hop.identity_file else None
    timeout = target.connect_timeout
    try:
        client.connect(
            hop.address,
            port=hop.port,
            username=hop.user,
            key_filename=key_file,
            allow_agent=False,
            look_for_keys=key_file is None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            sock=sock,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise JumpError("host key does not match known_hosts") from None
    except paramiko.AuthenticationException as error:
        client.close()
        raise JumpError(f"authentication failed as {hop.user}: {error}") from None
    except paramiko.SSHException as error:
        client.close()
        if "not found in known_hosts" in str(error):
            raise JumpError("host key not in known_hosts (host keys are checked)") from None
        raise
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if sock is None and transport is not None and isinstance(transport.sock, socket.socket):
        # paramiko leaves Nagle's algorithm on: about 40 ms lost on every command
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def _forward(
    client: paramiko.SSHClient, address: str, port: int, timeout: float
) -> paramiko.Channel:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise JumpError("connection closed")
    try:
        return transport.open_channel(
            "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout
        )
    except paramiko.ChannelException as error:
        raise JumpError(f"cannot forward to {address}:{port}: {error.text}") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    return str(error) or type(error).__name__
