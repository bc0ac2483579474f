"""A pyinfra State over a set of hosts: connect with timeouts, run one command, count commands.

The only place (with `apply`) that imports pyinfra. pyinfra's `state`/`host` globals stay in
here. Connections are made in parallel greenlets, each under a timeout, so an unreachable or
frozen host becomes an error value instead of a hung run.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import gevent
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.api.host import Host

from orchestrator.model.desired import HostTarget

ProgressFn = Callable[[str, str], None]


@dataclass
class HostLink:
    """One host of the session: its pyinfra Host, or why it could not be reached."""

    target: HostTarget
    host: Host
    error: str | None = None
    commands: int = 0


@dataclass
class FleetSession:
    state: State
    links: dict[str, HostLink]
    log: list[logging.LogRecord] = field(default_factory=list)

    def reachable(self) -> list[HostLink]:
        return [link for link in self.links.values() if link.error is None]

    def run(self, link: HostLink, script: str, timeout: float) -> tuple[bool, str, str]:
        """Run one shell script on a host: (succeeded, stdout, stderr). Raises TimeoutError."""
        with gevent.Timeout(timeout + 5, TimeoutError(f"no answer within {timeout:g} s")):
            ok, output = link.host.run_shell_command(StringCommand(script), _timeout=int(timeout))
        return ok, output.stdout, output.stderr


class _Capture(logging.Handler):
    """Keeps pyinfra's log records (its errors name hosts) instead of printing them."""

    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def _host_data(target: HostTarget) -> dict[str, object]:
    data: dict[str, object] = {
        "ssh_hostname": target.address,
        "ssh_port": target.port,
        "ssh_user": target.user,
        "ssh_allow_agent": False,
        "ssh_look_for_keys": target.identity_file is None,
        "ssh_strict_host_key_checking": "yes",
        "ssh_paramiko_connect_kwargs": {
            "banner_timeout": target.connect_timeout,
            "auth_timeout": target.connect_timeout,
        },
    }
    if target.identity_file:
        data["ssh_key"] = target.identity_file
    if target.known_hosts:
        data["ssh_known_hosts_file"] = target.known_hosts
    return data


@contextmanager
def open_session(
    targets: Sequence[HostTarget], progress: ProgressFn | None = None
) -> Iterator[FleetSession]:
    """Connect to every target in parallel; unreachable ones carry their reason."""
    if not targets:
        raise ValueError("open_session needs at least one host")
    inventory = Inventory(([(t.name, _host_data(t)) for t in targets], {}))
    timeout = max(t.connect_timeout for t in targets)
    config = Config(CONNECT_TIMEOUT=int(max(1, timeout)), FAIL_PERCENT=None, DIFF=False)
    state = State(inventory, config)
    log: list[logging.LogRecord] = []
    handler = _Capture(log)
    pyinfra_logger = logging.getLogger("pyinfra")
    saved = pyinfra_logger.propagate, pyinfra_logger.level
    pyinfra_logger.addHandler(handler)
    pyinfra_logger.propagate = False
    pyinfra_logger.setLevel(logging.INFO)
    links = {t.name: HostLink(t, inventory.get_host(t.name)) for t in targets}
    session = FleetSession(state, links, log)
    try:
        _connect_all(session, progress)
        yield session
    finally:
        _disconnect_all(session)
        pyinfra_logger.removeHandler(handler)
        pyinfra_logger.propagate, _ = saved
        pyinfra_logger.setLevel(saved[1])


def _connect_all(session: FleetSession, progress: ProgressFn | None) -> None:
    greenlets = {gevent.spawn(_connect, link): link for link in session.links.values()}
    for greenlet in gevent.iwait(list(greenlets)):
        link = greenlets[greenlet]
        link.error = (
            greenlet.value if greenlet.successful() else f"connect failed: {greenlet.exception}"
        )
        if link.error is None:
            session.state.activate_host(link.host)
        if progress:
            progress(link.target.name, "connected" if link.error is None else "unreachable")


def _connect(link: HostLink) -> str | None:
    limit = link.target.connect_timeout * 2 + 2
    try:
        with gevent.Timeout(limit, TimeoutError(f"no SSH session within {limit:g} s")):
            link.host.connect(show_errors=False, raise_exceptions=True)
    except ConnectError as error:
        return f"unreachable: {error}"
    except (TimeoutError, OSError, PyinfraError) as error:
        return f"unreachable: {error}"
    _set_nodelay(link.host)
    _count_commands(link)
    return None


def _count_commands(link: HostLink) -> None:
    """Count every remote command and file transfer this host's connector makes."""
    connector = link.host.connector
    for method in ("run_shell_command", "put_file", "get_file"):
        original = getattr(connector, method)

        def counted(
            *args: object, _original: Callable[..., object] = original, **kwargs: object
        ) -> object:
            link.commands += 1
            return _original(*args, **kwargs)

        setattr(connector, method, counted)


def _set_nodelay(host: Host) -> None:
    """paramiko leaves Nagle's algorithm on: about 40 ms lost on every command."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _disconnect_all(session: FleetSession) -> None:
    def close(link: HostLink) -> None:
        if link.host.connected:
            with gevent.Timeout(5, False):
                link.host.disconnect()
            client = getattr(link.host.connector, "client", None)
            if client is not None:
                client.close()

    gevent.joinall([gevent.spawn(close, link) for link in session.links.values()], timeout=10)
