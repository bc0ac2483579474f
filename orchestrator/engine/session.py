"""A pyinfra State over a set of hosts: connect with timeouts, run one command, count commands.

The only place (with `apply`) that imports pyinfra. pyinfra's `state`/`host` globals stay in
here. Connections are made in parallel greenlets, each under a timeout, so an unreachable or
frozen host becomes an error value instead of a hung run. Every remote step after that (the
probe, reading facts, each operation) runs under `run_step`: a deadline (the inventory's
`command_timeout`) and a watchdog that sends SSH keepalives while it waits, so a host that stops
answering (frozen, cut off) is given up after seconds, not at the deadline, and the error names
the step and how long it ran.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast

import gevent
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.api.host import Host

from orchestrator.engine.facts import FactCache
from orchestrator.engine.jump import JumpChain, JumpError, open_jump_chain
from orchestrator.model.desired import HostTarget
from orchestrator.sudo import sudo_command, sudo_input, sudo_refusal

ProgressFn = Callable[[str, str], None]
T = TypeVar("T")

# A host that leaves an SSH keepalive unanswered this many times its connect timeout (and at
# least SILENCE_MIN seconds) is given up: a busy sshd answers keepalives at once, even while a
# long apt run produces no output, so only a frozen or cut-off host stays silent that long.
SILENCE_FACTOR = 3
SILENCE_MIN = 5.0
KEEPALIVE_REQUEST = "keepalive@openssh.com"
SUDO_OK = "patchring-sudo-ok"


class StepStopped(Exception):
    """A remote step that did not finish: it ran past its deadline, or the host went silent."""

    def __init__(self, message: str, host_silent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.host_silent = host_silent


@dataclass
class HostLink:
    """One host of the session: its pyinfra Host, or why it could not be reached."""

    target: HostTarget
    host: Host
    error: str | None = None
    commands: int = 0  # remote sessions: SSH channels opened, and files sent or fetched
    facts: FactCache | None = None  # pyinfra facts of this host, once operations are prepared
    jump: JumpChain | None = None  # the jump hosts' connections, when it has any


@dataclass
class FleetSession:
    state: State
    links: dict[str, HostLink]
    log: list[logging.LogRecord] = field(default_factory=list)

    def reachable(self) -> list[HostLink]:
        return [link for link in self.links.values() if link.error is None]

    def run(
        self, link: HostLink, script: str, timeout: float, what: str = "command"
    ) -> tuple[bool, str, str]:
        """Run one shell script on a host: (succeeded, stdout, stderr). Raises StepStopped."""

        def run() -> tuple[bool, str, str]:
            # pyinfra's own timeout only backs up run_step's deadline, which names the step.
            command = StringCommand(sudo_command(script, link.target))
            ok, output = link.host.run_shell_command(
                command, _timeout=int(timeout) + 5, _stdin=sudo_input(link.target)
            )
            return ok, output.stdout, output.stderr

        return run_step(link, what, timeout, run)


def run_step(link: HostLink, what: str, timeout: float, step: Callable[[], T]) -> T:
    """Run `step` (remote work on the link's host) in its own greenlet, with a deadline and a
    watchdog: while it runs, an SSH keepalive goes out every connect timeout, and a host that
    answers none for the silence limit is given up. The step's own exceptions pass through;
    a step stopped here raises StepStopped saying what ran, for how long, and why it stopped."""
    started = time.monotonic()
    interval = max(1.0, link.target.connect_timeout)
    silence = max(SILENCE_MIN, SILENCE_FACTOR * link.target.connect_timeout)
    worker = gevent.spawn(_captured, step)
    try:
        while True:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise StepStopped(f"{what} timed out after {timeout:g} s", host_silent=False)
            worker.join(timeout=min(interval, remaining))
            if worker.ready():
                return _outcome(worker.get())
            if not _answers_keepalive(link.host, min(silence, max(remaining, 1.0))):
                if worker.ready():
                    return _outcome(worker.get())
                elapsed = time.monotonic() - started
                raise StepStopped(
                    f"{what} stopped after {elapsed:.0f} s: host not answering "
                    f"(no SSH reply within {silence:g} s)",
                    host_silent=True,
                )
    finally:
        if not worker.ready():
            worker.kill(block=False)  # its connection is abandoned: nothing more runs on it


def _captured(step: Callable[[], T]) -> tuple[T, Exception | None]:
    """The step's value or exception: a greenlet that raises is printed by gevent's hub."""
    try:
        return step(), None
    except Exception as error:  # handed back to run_step's caller, raised there
        return cast(T, None), error


def _outcome(captured: tuple[T, Exception | None]) -> T:
    value, error = captured
    if error is not None:
        raise error
    return value


def _answers_keepalive(host: Host, limit: float) -> bool:
    """Whether the host's sshd answers a keepalive within `limit` seconds (it replies even to
    requests it does not know, so any reply will do)."""
    client = getattr(host.connector, "client", None)
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_active():
        return True  # the connection is gone: the step itself fails at once, with its reason
    with gevent.Timeout(limit, False):
        transport.global_request(KEEPALIVE_REQUEST, wait=True)
        return True
    return False


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
    if target.sudo:  # pyinfra's global arguments, for every operation and fact of the host
        data["_sudo"] = True
        if target.sudo_user:
            data["_sudo_user"] = target.sudo_user
        if target.sudo_password is not None:
            data["_sudo_password"] = target.sudo_password.get_secret_value()
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
        with gevent.Timeout(limit, TimeoutError(f"connect timed out after {limit:g} s")):
            if link.target.jump_hosts:
                _through_jump_hosts(link)
            link.host.connect(show_errors=False, raise_exceptions=True)
    except JumpError as error:
        return f"unreachable: {error}"
    except ConnectError as error:
        return f"unreachable: {error}"
    except (TimeoutError, OSError, PyinfraError) as error:
        return f"unreachable: {error}"
    _set_nodelay(link.host)
    _count_commands(link)
    return _check_sudo(link) if link.target.sudo else None


def _check_sudo(link: HostLink) -> str | None:
    """Whether sudo runs commands for the login user, asked once before any other command:
    a host whose sudo wants a password that was not given (or refuses the one given) fails
    here with a message saying so. The check itself exits 0 with sudo's words on stdout:
    pyinfra answers a failed command that says "sudo: a password is required" with a
    password prompt, which must never happen here."""
    target = link.target
    check = f"if {sudo_command('true', target)} 2>&1; then echo {SUDO_OK}; fi"
    limit = max(5.0, target.connect_timeout * 2)
    try:
        with gevent.Timeout(limit, TimeoutError(f"sudo gave no answer within {limit:g} s")):
            _, output = link.host.run_shell_command(
                StringCommand(check), _timeout=int(limit) + 1, _stdin=sudo_input(target)
            )
    except (TimeoutError, OSError, PyinfraError) as error:
        return f"sudo on {target.name} failed: {error}"
    said = "\n".join((output.stdout, output.stderr)).strip()
    if said.endswith(SUDO_OK):
        return None
    return sudo_refusal(target, said) or f"sudo on {target.name} failed: {said[-300:]}"


def _through_jump_hosts(link: HostLink) -> None:
    """Connect the jump hosts and hand pyinfra the channel to the host as its socket."""
    if link.jump is not None:
        link.jump.close()
    link.jump = open_jump_chain(link.target)
    data = link.host.connector.data
    data["ssh_paramiko_connect_kwargs"] = {
        **data["ssh_paramiko_connect_kwargs"],
        "sock": link.jump.channel,
    }


def _count_commands(link: HostLink) -> None:
    """Count every remote session of this host: each SSH channel opened (a command, pyinfra's
    fact reads, the sftp or scp channel of file transfers) and each file sent or fetched."""
    connector = link.host.connector
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    counted_methods: list[tuple[object, str]] = [(connector, "put_file"), (connector, "get_file")]
    if transport is not None:
        counted_methods.append((transport, "open_channel"))
    else:  # a connector without paramiko: count its commands instead
        counted_methods.append((connector, "run_shell_command"))
    for owner, method in counted_methods:
        original = getattr(owner, method)

        def counted(
            *args: object, _original: Callable[..., object] = original, **kwargs: object
        ) -> object:
            link.commands += 1
            return _original(*args, **kwargs)

        setattr(owner, method, counted)


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
        if link.jump is not None:
            link.jump.close()

    gevent.joinall([gevent.spawn(close, link) for link in session.links.values()], timeout=10)
