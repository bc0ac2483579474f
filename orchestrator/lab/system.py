"""The controller side of the lab: preflight checks, running commands, locks, daemons, processes.

Every external command goes through `run_command` (argv lists, never a shell string) so a failure
becomes a `LabError` that quotes the command and its stderr. Daemons (host runners, the apt HTTP
server) are started detached with `setsid --fork`, join their cgroups before they run anything,
and write their own PID, so any later process finds them again by PID, start time and cgroup.
Imports only `orchestrator.errors` from the package.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from orchestrator.errors import LabError

LOCK_PATH = Path("/run/patchring/lab.lock")

# command -> Debian package that ships it
REQUIRED_COMMANDS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "apt-ftparchive": "apt-utils",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "dpkg-deb": "dpkg",
    "gpg": "gnupg",
    "gpgconf": "gnupg",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setsid": "util-linux",
}

# Joins the cgroups given before `--`, records its PID atomically, then becomes the daemon.
_LAUNCHER = (
    "pidfile=$1; shift; "
    'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 97; shift; done; shift; '
    'echo $$ > "$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile" || exit 98; exec "$@"'
)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root", hint="run it as root (for example with sudo)")


def require_commands(commands: Sequence[str] = tuple(REQUIRED_COMMANDS)) -> None:
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        packages = sorted({REQUIRED_COMMANDS.get(command, command) for command in missing})
        raise LabError(
            f"missing commands for the lab: {', '.join(missing)}",
            hint=f"apt-get install --no-install-recommends {' '.join(packages)}",
        )


def require_overlayfs() -> None:
    text = Path("/proc/filesystems").read_text()
    if "overlay" not in text.split():
        run_command(["modprobe", "overlay"], check=False)
        if "overlay" not in Path("/proc/filesystems").read_text().split():
            raise LabError(
                "the kernel has no overlayfs", hint="modprobe overlay, or use a kernel with it"
            )


def run_command(
    argv: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[str]:
    """Run argv and capture its output; a failure (with check) is a LabError quoting stderr."""
    try:
        # Pass either input or stdin, never both: gevent's patched subprocess.run refuses
        # stdin=None beside input (the CLI runs under gevent).
        feed: dict[str, object] = (
            {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
        )
        result = subprocess.run(  # type: ignore[call-overload]
            list(argv),
            **feed,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        require_commands([argv[0]])
        raise
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish in {timeout} s") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LabError(
            f"`{' '.join(argv)}` failed with exit code {result.returncode}: {' / '.join(detail)}"
        )
    return result


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """One lab change at a time on this machine (up, down, reset), across processes."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def raise_sysctl(path: str, minimum: int) -> None:
    """Raise a /proc/sys integer to at least `minimum` (never lowers it)."""
    target = Path("/proc/sys") / path
    if int(target.read_text().split()[0]) < minimum:
        target.write_text(f"{minimum}\n")


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live process; None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_alive(pid: int, start_time: int) -> bool:
    """True when `pid` still is the process that started at `start_time` (no PID reuse)."""
    reap_child(pid)
    return pid > 0 and process_start_time(pid) == start_time


def reap_child(pid: int) -> None:
    """Collect an exited child so it does not linger as a zombie (no-op for non-children)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def spawn_daemon(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    cgroup_dirs: Sequence[Path],
    env: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, int]:
    """Start argv detached (own session, no parent to outlive) in the given cgroups.

    Returns (pid, start time). stdin is /dev/null, stdout and stderr go to `log_file`.
    """
    pid_file.unlink(missing_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    launcher = ["setsid", "--fork", "/bin/sh", "-c", _LAUNCHER, "patchring-launch", str(pid_file)]
    launcher += [str(path) for path in cgroup_dirs] + ["--", *argv]
    with open(log_file, "ab") as log:
        subprocess.run(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            start = process_start_time(pid)
            if start is not None:
                return pid, start
            break
        time.sleep(0.005)
    raise LabError(f"{argv[0]} did not start", hint=f"see {log_file}:\n{tail_file(log_file)}")


def tail_file(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])
