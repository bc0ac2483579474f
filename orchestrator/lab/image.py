"""The shared base root file systems of the lab hosts, one per Debian release (bookworm, trixie):
built once with mmdebstrap, then cached.

A cache entry is named by its release and a hash of the recipe (mmdebstrap arguments plus every
customisation below), built in a temporary directory and renamed into place, so a half-built
image is never used; it is rebuilt when missing. Hosts mount it read-only as the lower layer of
an overlay and get their identity (hostname, machine-id, host key) in their own upper layer. The
only network traffic here is mmdebstrap's own, to the Debian mirror. Imports only
`orchestrator.errors` and sibling modules.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import LabError

from .config import DEFAULT_RELEASE, RELEASES
from .system import run_command, tail_file

MIRROR = "http://deb.debian.org/debian"
INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "ca-certificates",
    "iproute2",
    "procps",
    "sudo",  # for the tests of non-root logins that escalate with sudo
)
RECIPE_REVISION = 2

# Units that slow the boot down, start jobs nobody asked for, or fight the lab's own setup.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "console-getty.service",
    "container-getty@.service",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty-static.service",
    "getty@.service",
    "serial-getty@.service",
    "systemd-firstboot.service",
    "systemd-networkd-wait-online.service",
    "systemd-pstore.service",
)

SSHD_CONFIG = """\
# patchring lab host: root by key only, fast and quiet logins, many parallel sessions.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxSessions 64
MaxStartups 200:30:400
PrintMotd no
PrintLastLog no
"""

JOURNALD_CONFIG = "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n"
APT_CONFIG = 'Acquire::Languages "none";\n'
ROOT_BASHRC = "# Kept tiny on purpose: every remote command of the orchestrator starts a shell.\n"
ROOT_PROFILE = '[ -n "$BASH_VERSION" ] && [ -f ~/.bashrc ] && . ~/.bashrc\n'


def recipe(release: str = DEFAULT_RELEASE) -> dict[str, object]:
    """Everything that goes into the image of one release; its hash names the cache entry."""
    return {
        "revision": RECIPE_REVISION,
        "suite": release,
        "mirror": MIRROR,
        "include": INCLUDE,
        "masked": MASKED_UNITS,
        "sshd": SSHD_CONFIG,
        "journald": JOURNALD_CONFIG,
        "apt": APT_CONFIG,
        "bashrc": ROOT_BASHRC,
        "profile": ROOT_PROFILE,
    }


def image_path(cache_dir: Path, release: str = DEFAULT_RELEASE) -> Path:
    key = hashlib.sha256(json.dumps(recipe(release), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / "images" / f"debian-{release}-{key}"


def ensure_base_image(
    cache_dir: Path, progress: Callable[[str], None], release: str = DEFAULT_RELEASE
) -> Path:
    """The cached base image of a release for the current recipe; builds it (about a minute)
    if missing."""
    if release not in RELEASES:
        raise LabError(
            f"the lab cannot boot Debian {release!r}",
            hint=f"choose one of: {', '.join(RELEASES)}",
        )
    target = image_path(cache_dir, release)
    if (target / "usr/lib/os-release").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "usr/lib/os-release").exists():
            return target
        for stale in target.parent.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        progress(f"building the Debian {release} base image (once; cached in {target.parent})")
        started = time.monotonic()
        building = target.parent / f".build-{target.name}-{os.getpid()}"
        try:
            _bootstrap(building, release, target.parent / f"mmdebstrap-{release}.log")
            customise_image(building)
            os.rename(building, target)
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
        progress(f"base image built in {time.monotonic() - started:.0f} s")
    return target


def _bootstrap(directory: Path, release: str, log_path: Path) -> None:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(INCLUDE)}",
        release,
        str(directory),
        MIRROR,
    ]
    result = run_command(argv, check=False, timeout=900)
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise LabError(
            f"mmdebstrap could not build the base image (exit code {result.returncode})",
            hint=f"is the Debian mirror reachable through apt? see {log_path}:\n"
            + tail_file(log_path, 8),
        )


def customise_image(root: Path) -> None:
    """Strip per-machine identity and Debian's apt sources; quiet, fast sshd and boot."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    for source in (root / "etc/apt/sources.list.d").iterdir():
        source.unlink()
    for listing in (root / "var/lib/apt/lists").glob("*"):
        if listing.is_file() and listing.name != "lock":
            listing.unlink()
    for cached in (root / "var/cache/apt").glob("*.bin"):
        cached.unlink()
    _write(root / "etc/apt/apt.conf.d/90patchring-lab", APT_CONFIG)
    units = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    _write(root / "etc/systemd/journald.conf.d/patchring-lab.conf", JOURNALD_CONFIG)
    _write(root / "etc/ssh/sshd_config.d/patchring-lab.conf", SSHD_CONFIG)
    pam_sshd = root / "etc/pam.d/sshd"
    kept = [
        line
        for line in pam_sshd.read_text().splitlines()
        if not line.lstrip().startswith("session")
        or ("pam_motd" not in line and "pam_mail" not in line)
    ]
    pam_sshd.write_text("\n".join(kept) + "\n")
    (root / "etc/motd").unlink(missing_ok=True)  # trixie ships it as a symlink
    (root / "etc/motd").write_text("")
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root / "etc/update-motd.d")
    _write(root / "root/.bashrc", ROOT_BASHRC)
    _write(root / "root/.profile", ROOT_PROFILE)
    _write(root / "root/.hushlogin", "")


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
