"""The lab's signed apt repository (test packages to patch between) and its HTTP server.

Distributions (`dists/<name>`, each indexing its own `pool/<name>`):
- `lab`: acme-agent 1.0-1 and 1.0-2 (the "security fix", a service restarted by its postinst),
  acme-tool 1.0-1 (depends on the agent), acme-kernel 1.0-1 (an upgrade of it asks for a reboot
  the way Debian's kernel hooks do: `/run/reboot-required` and `.pkgs`), libacme1 1.0-1 (a library,
  source `libacme`) and acme-libuser 1.0-1, 1.0-2 (a service that keeps libacme.so.1 mapped, so
  a library upgrade leaves it on the deleted file, `(deleted)` in its /proc/PID/maps).
- `broken`: acme-agent 1.0-3, whose postinst fails.
- `<codename>-security` for every release the lab can boot (bookworm-security, trixie-security):
  a security archive, `Origin: patchring-lab`, `Label: patchring-lab-Security`,
  `Suite: lab-security`, `Codename: <codename>-security` (as Debian-Security's `l=`/`n=`), with
  acme-agent 1.0-2, libacme1 1.1-1 and acme-kernel 1.0-2.
`publish` adds a version to a distribution of the running lab later ("published over time").
Packages are built with `dpkg-deb` (reproducibly: one name and version with the same content is
the same file in every distribution), indexed with `apt-ftparchive`, with by-hash indexes so a
host updating during a publish never sees a mismatch, and signed (InRelease + Release.gpg) with a
throwaway gpg key kept in the lab's state directory; the armored public key is exported beside
it. The server is `python -m http.server` bound to the bridge address, started detached in its
own cgroup. Imports only `orchestrator.errors` and sibling modules.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.errors import LabError

from .config import RELEASES
from .state import LabPaths, ProcessRecord
from .system import process_alive, run_command, spawn_daemon, tail_file

ARCHITECTURE = "amd64"
KEY_FILE_NAME = "lab-archive-key.asc"
MAINTAINER = "patchring lab <lab@patchring.invalid>"

AGENT_SCRIPT = """#!/bin/sh
# acme-agent: a stand-in service of the patchring lab. Logs its version and config, then sleeps.
echo "acme-agent $(cat /usr/share/acme-agent/VERSION) starting"
if [ -r /etc/acme/agent.conf ]; then
    echo "config /etc/acme/agent.conf:"
    cat /etc/acme/agent.conf
else
    echo "no config at /etc/acme/agent.conf"
fi
exec sleep infinity
"""
AGENT_UNIT = """[Unit]
Description=ACME agent (patchring lab test package)

[Service]
ExecStart=/usr/bin/acme-agent
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
AGENT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable acme-agent.service
    systemctl restart acme-agent.service
fi
"""
BROKEN_POSTINST = """#!/bin/sh
echo "acme-agent: simulated broken postinst" >&2
exit 1
"""
AGENT_PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl stop acme-agent.service || true
fi
"""
AGENT_POSTRM = """#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    rm -f /etc/systemd/system/multi-user.target.wants/acme-agent.service
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
"""
TOOL_SCRIPT = """#!/bin/sh
# acme-tool: a command-line companion of acme-agent (patchring lab test package).
echo "acme-tool @VERSION@ (agent $(cat /usr/share/acme-agent/VERSION 2>/dev/null || echo missing))"
"""
# Debian's kernel postinst hooks (unattended-upgrades' /etc/kernel/postinst.d/) do exactly this;
# here only on an upgrade ("configure OLD-VERSION"), so a freshly set-up host needs no reboot.
KERNEL_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -n "$2" ] && [ -d /run ]; then
    touch /run/reboot-required
    if ! grep -qx acme-kernel /run/reboot-required.pkgs 2>/dev/null; then
        echo acme-kernel >> /run/reboot-required.pkgs
    fi
fi
"""
LIBRARY_PATH = "usr/lib/x86_64-linux-gnu/libacme.so.1"
# Maps the library read-only and private, as the dynamic loader maps a library's segments, then
# sleeps: after an upgrade its /proc/PID/maps names the old file "(deleted)".
LIBUSER_SCRIPT = """#!/usr/bin/python3
# acme-libuser: a stand-in service that uses libacme (patchring lab test package).
import mmap, time
with open("/@LIBRARY@", "rb") as library:
    mapped = mmap.mmap(library.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print("acme-libuser @VERSION@ using", mapped.readline().decode().strip(), flush=True)
while True:
    time.sleep(3600)
"""
LIBUSER_UNIT = """[Unit]
Description=ACME library user (patchring lab test package)

[Service]
ExecStart=/usr/bin/acme-libuser
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def _service_scripts(unit: str) -> tuple[tuple[str, str], ...]:
    """postinst (enable and restart), prerm (stop) and postrm of a package with one service."""
    postinst = AGENT_POSTINST.replace("acme-agent.service", unit)
    prerm = AGENT_PRERM.replace("acme-agent.service", unit)
    postrm = AGENT_POSTRM.replace("acme-agent.service", unit)
    return (("postinst", postinst), ("prerm", prerm), ("postrm", postrm))


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: tuple[tuple[str, str, int], ...]  # (path, content, mode)
    scripts: tuple[tuple[str, str], ...] = ()  # (maintainer script name, content)
    depends: str = ""
    description: str = ""
    source: str = ""  # the source package, when its name is not the binary's
    architecture: str = "all"
    multi_arch: str = ""
    section: str = "admin"

    @property
    def deb_name(self) -> str:
        """The pool file name: Debian's, without the epoch."""
        return (
            f"{self.name}_{self.version.partition(':')[2] or self.version}_{self.architecture}.deb"
        )


def _agent(version: str) -> Package:
    return Package(
        name="acme-agent",
        version=version,
        files=(
            ("usr/bin/acme-agent", AGENT_SCRIPT, 0o755),
            ("lib/systemd/system/acme-agent.service", AGENT_UNIT, 0o644),
            ("usr/share/acme-agent/VERSION", version + "\n", 0o644),
        ),
        scripts=(("postinst", AGENT_POSTINST), ("prerm", AGENT_PRERM), ("postrm", AGENT_POSTRM)),
        description="ACME agent (patchring lab test package)",
    )


def _tool(version: str) -> Package:
    return Package(
        name="acme-tool",
        version=version,
        files=(("usr/bin/acme-tool", TOOL_SCRIPT.replace("@VERSION@", version), 0o755),),
        depends="acme-agent (>= 1.0-1)",
        description="ACME tool (patchring lab test package)",
    )


def _kernel(version: str) -> Package:
    return Package(
        name="acme-kernel",
        version=version,
        files=(("usr/share/acme-kernel/VERSION", version + "\n", 0o644),),
        scripts=(("postinst", KERNEL_POSTINST),),
        description="ACME kernel (patchring lab test package): upgrades need a reboot",
        section="kernel",
    )


def _library(version: str) -> Package:
    return Package(
        name="libacme1",
        version=version,
        files=((LIBRARY_PATH, f"libacme {version}\n" + "\0" * 4096, 0o644),),
        description="ACME shared library (patchring lab test package)",
        source="libacme",
        architecture=ARCHITECTURE,
        multi_arch="same",
        section="libs",
    )


def _libuser(version: str) -> Package:
    script = LIBUSER_SCRIPT.replace("@LIBRARY@", LIBRARY_PATH).replace("@VERSION@", version)
    return Package(
        name="acme-libuser",
        version=version,
        files=(
            ("usr/bin/acme-libuser", script, 0o755),
            ("usr/lib/systemd/system/acme-libuser.service", LIBUSER_UNIT, 0o644),
        ),
        scripts=_service_scripts("acme-libuser.service"),
        depends="libacme1 (>= 1.0-1), python3",
        description="ACME library user service (patchring lab test package)",
    )


def _filler(name: str, version: str) -> Package:
    return Package(
        name=name,
        version=version,
        files=((f"usr/share/{name}/VERSION", version + "\n", 0o644),),
        description="ACME filler (patchring lab test package): makes a host's package list long",
        section="misc",
    )


# Filler packages (`acme-filler-1` ... `acme-filler-9999`), published in bulk so that a host
# can have as many installed packages as a real server (for benchmarks of the probe).
FILLER_RE = re.compile(r"^acme-filler-[1-9][0-9]{0,3}$")
# The test packages, by name: each builds any version.
TEMPLATES: dict[str, Callable[[str], Package]] = {
    "acme-agent": _agent,
    "acme-tool": _tool,
    "acme-kernel": _kernel,
    "libacme1": _library,
    "acme-libuser": _libuser,
}
MAIN_SUITES = ("lab", "broken")
SECURITY_SUITE = "lab-security"  # the Suite: of every <codename>-security distribution
SECURITY_ORIGIN = "patchring-lab"
SECURITY_LABEL = "patchring-lab-Security"
# (distribution, package, version, broken); "lab-security" means every <codename>-security.
INITIAL_CONTENT: tuple[tuple[str, str, str, bool], ...] = (
    ("lab", "acme-agent", "1.0-1", False),
    ("lab", "acme-agent", "1.0-2", False),
    ("lab", "acme-tool", "1.0-1", False),
    ("lab", "acme-kernel", "1.0-1", False),
    ("lab", "libacme1", "1.0-1", False),
    ("lab", "acme-libuser", "1.0-1", False),
    ("lab", "acme-libuser", "1.0-2", False),
    ("broken", "acme-agent", "1.0-3", True),
    (SECURITY_SUITE, "acme-agent", "1.0-2", False),
    (SECURITY_SUITE, "libacme1", "1.1-1", False),
    (SECURITY_SUITE, "acme-kernel", "1.0-2", False),
)
# Every file of every package gets this time (and dpkg-deb SOURCE_DATE_EPOCH): reproducible.
BUILD_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
_VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)?$")


def security_dist(release: str) -> str:
    return f"{release}-security"


def distributions() -> tuple[str, ...]:
    return MAIN_SUITES + tuple(security_dist(release) for release in RELEASES)


def resolve_suite(suite: str) -> tuple[str, ...]:
    """The distributions a suite name stands for; LabError naming the choices otherwise."""
    if suite == SECURITY_SUITE:
        return tuple(security_dist(release) for release in RELEASES)
    if suite in distributions():
        return (suite,)
    raise LabError(
        f"the lab's apt repository has no suite {suite!r}",
        hint=f"choose one of: {', '.join((*distributions(), SECURITY_SUITE))}",
    )


def make_package(name: str, version: str, *, broken: bool = False) -> Package:
    """A test package at any version; `broken` gives it a postinst that fails."""
    template = TEMPLATES.get(name)
    if template is None and FILLER_RE.match(name):
        template = functools.partial(_filler, name)
    if template is None:
        raise LabError(
            f"the lab has no test package {name!r}", hint=f"its packages: {', '.join(TEMPLATES)}"
        )
    if not _VERSION_RE.match(version):
        raise LabError(
            f"invalid Debian version {version!r}",
            hint="for example 1.0-4, 1.0-2+deb12u1 or 1:2.0~rc1-1",
        )
    package = template(version)
    if broken:
        failing = BROKEN_POSTINST.replace("acme-agent", name)
        scripts = tuple(item for item in package.scripts if item[0] != "postinst")
        package = replace(package, scripts=(*scripts, ("postinst", failing)))
    return package


def build_repository(paths: LabPaths, lab: str) -> str:
    """Build and sign the repository under the state directory; returns the armored public key."""
    repo = paths.apt_repo
    with _repo_lock(paths):
        shutil.rmtree(repo, ignore_errors=True)
        for suite, name, version, broken in INITIAL_CONTENT:
            deb = _build_deb(make_package(name, version, broken=broken), paths.root)
            for dist in resolve_suite(suite):
                _add_to_pool(deb, repo / "pool" / dist)
            deb.unlink()
        fingerprint = _ensure_signing_key(paths, lab)
        try:
            for dist in distributions():
                _index_dist(repo, dist)
                _sign_dist(paths, repo / "dists" / dist, fingerprint)
            key = run_command([*_gpg(paths), "--armor", "--export", fingerprint]).stdout
        finally:
            _stop_gpg_agent(paths)
    paths.archive_key.write_text(key)
    (repo / KEY_FILE_NAME).write_text(key)
    return key


def publish(
    paths: LabPaths, lab: str, name: str, version: str, suite: str, *, broken: bool = False
) -> tuple[str, ...]:
    """Add one version of a test package to a suite of the lab's repository and re-sign it.

    Returns the distributions changed. Hosts see the new version after their next
    `apt-get update`. The same name and version with the same content is the same file
    everywhere; publishing it again changes nothing but the Release date.
    """
    return publish_packages(paths, lab, [make_package(name, version, broken=broken)], suite)


def publish_packages(
    paths: LabPaths, lab: str, packages: Sequence[Package], suite: str
) -> tuple[str, ...]:
    """Add packages to a suite, then index and sign each distribution once (bulk publish)."""
    dists = resolve_suite(suite)
    repo = paths.apt_repo
    if not (repo / "dists").is_dir():
        raise LabError(f"the lab's apt repository {repo} is missing")
    with _repo_lock(paths):
        for package in packages:
            deb = _build_deb(package, paths.root)
            try:
                for dist in dists:
                    _add_to_pool(deb, repo / "pool" / dist)
            finally:
                deb.unlink()
        fingerprint = _ensure_signing_key(paths, lab)
        try:
            for dist in dists:
                _index_dist(repo, dist)
                _sign_dist(paths, repo / "dists" / dist, fingerprint)
        finally:
            _stop_gpg_agent(paths)
    return dists


@contextlib.contextmanager
def _repo_lock(paths: LabPaths) -> Iterator[None]:
    """One writer at a time per lab repository (a lab's own lock, not the machine's)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.apt_lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _add_to_pool(deb: Path, pool: Path) -> None:
    pool.mkdir(parents=True, exist_ok=True)
    temporary = pool / f".{deb.name}.tmp"
    shutil.copyfile(deb, temporary)
    os.replace(temporary, pool / deb.name)


def _build_deb(package: Package, workdir: Path) -> Path:
    """Build the package in a scratch directory under `workdir`; returns the .deb there."""
    scratch = Path(tempfile.mkdtemp(prefix=".apt-build-", dir=workdir))
    try:
        root = scratch / "root"
        (root / "DEBIAN").mkdir(parents=True)
        for relative, content, mode in package.files:
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(mode)
        control = [
            f"Package: {package.name}",
            f"Version: {package.version}",
            f"Architecture: {package.architecture}",
        ]
        if package.multi_arch:
            control.append(f"Multi-Arch: {package.multi_arch}")
        if package.source:
            control.append(f"Source: {package.source}{_source_version(package.version)}")
        control += [
            f"Maintainer: {MAINTAINER}",
            f"Section: {package.section}",
            "Priority: optional",
        ]
        if package.depends:
            control.append(f"Depends: {package.depends}")
        control.append(
            f"Description: {package.description}\n Built by patchring for its local lab."
        )
        (root / "DEBIAN/control").write_text("\n".join(control) + "\n")
        for name, content in package.scripts:
            script = root / "DEBIAN" / name
            script.write_text(content)
            script.chmod(0o755)
        for path in [root, *root.rglob("*")]:
            os.utime(path, (BUILD_EPOCH, BUILD_EPOCH), follow_symlinks=False)
        deb = workdir / f".{package.deb_name}"
        run_command(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
            env={**os.environ, "SOURCE_DATE_EPOCH": str(BUILD_EPOCH)},
        )
        final = workdir / package.deb_name
        os.replace(deb, final)
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _source_version(version: str) -> str:
    """` (source version)` for a binNMU (`+bN`, binary only), as Debian's control files say."""
    match = re.match(r"^(.*)\+b[0-9]+$", version)
    return f" ({match.group(1)})" if match else ""


def _gpg(paths: LabPaths) -> list[str]:
    return [
        "gpg",
        "--batch",
        "--quiet",
        "--homedir",
        str(paths.gnupg),
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]


def _ensure_signing_key(paths: LabPaths, lab: str) -> str:
    """The fingerprint of the lab's signing key, made on first use (ed25519, no expiry)."""
    paths.gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.gnupg.chmod(0o700)
    listing = run_command([*_gpg(paths), "--with-colons", "--list-secret-keys"], check=False).stdout
    if "fpr:" not in listing:
        uid = f"patchring lab {lab} archive <lab-archive@patchring.invalid>"
        run_command([*_gpg(paths), "--quick-generate-key", uid, "ed25519", "sign", "never"])
        listing = run_command([*_gpg(paths), "--with-colons", "--list-secret-keys"]).stdout
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise LabError(f"gpg made no signing key in {paths.gnupg}")


def _stop_gpg_agent(paths: LabPaths) -> None:
    run_command(["gpgconf", "--homedir", str(paths.gnupg), "--kill", "all"], check=False)


def _release_fields(dist: str) -> dict[str, str]:
    common = {"Architectures": ARCHITECTURE, "Components": "main", "Acquire-By-Hash": "yes"}
    for release, version in RELEASES.items():
        if dist == security_dist(release):
            return {
                "Origin": SECURITY_ORIGIN,
                "Label": SECURITY_LABEL,
                "Suite": SECURITY_SUITE,
                "Version": version,
                "Codename": dist,
                **common,
                "Description": f"patchring lab security updates for Debian {version}",
            }
    return {
        "Origin": "patchring",
        "Label": "patchring lab",
        "Suite": dist,
        "Codename": dist,
        **common,
        "Description": f"patchring lab test packages ({dist})",
    }


def _index_dist(repo: Path, dist: str) -> None:
    """Packages (+ by-hash copies, kept so a host mid-update finds the old ones) and Release."""
    binary = repo / "dists" / dist / "main" / f"binary-{ARCHITECTURE}"
    by_hash = binary / "by-hash" / "SHA512"  # apt asks by the strongest hash in Release
    by_hash.mkdir(parents=True, exist_ok=True)
    (repo / "pool" / dist).mkdir(parents=True, exist_ok=True)
    packages = run_command(["apt-ftparchive", "packages", f"pool/{dist}"], cwd=repo).stdout
    for name, data in (
        ("Packages", packages.encode()),
        ("Packages.gz", gzip.compress(packages.encode(), mtime=0)),
    ):
        _write_atomic(by_hash / hashlib.sha512(data).hexdigest(), data)
        _write_atomic(binary / name, data)
    # Only the indexes: by default the old Release itself would be listed on a re-index.
    argv = ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Default-Patterns=false"]
    for pattern in ("Packages", "Packages.gz"):
        argv += ["-o", f"APT::FTPArchive::Release::Patterns::={pattern}"]
    for key, value in _release_fields(dist).items():
        argv += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
    release = run_command([*argv, "release", f"dists/{dist}"], cwd=repo).stdout
    _write_atomic(repo / "dists" / dist / ".Release.new", release.encode())


def _sign_dist(paths: LabPaths, dist_dir: Path, fingerprint: str) -> None:
    """Sign the new Release, then put Release, Release.gpg and InRelease in place."""
    new = dist_dir / ".Release.new"
    signer = [*_gpg(paths), "--yes", "--local-user", fingerprint, "--digest-algo", "SHA512"]
    run_command([*signer, "--clearsign", "--output", str(dist_dir / ".InRelease.new"), str(new)])
    run_command(
        [
            *signer,
            "--armor",
            "--detach-sign",
            "--output",
            str(dist_dir / ".Release.gpg.new"),
            str(new),
        ]
    )
    os.replace(new, dist_dir / "Release")
    os.replace(dist_dir / ".Release.gpg.new", dist_dir / "Release.gpg")
    os.replace(dist_dir / ".InRelease.new", dist_dir / "InRelease")


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def start_http_server(
    paths: LabPaths, address: str, port: int, cgroup_dirs: tuple[Path, ...]
) -> ProcessRecord:
    """Serve the repository at http://address:port/ from a detached process, once it listens."""
    argv = [
        sys.executable,
        "-I",
        "-m",
        "http.server",
        str(port),
        "--bind",
        address,
        "--directory",
        str(paths.apt_repo),
    ]
    log = paths.logs / "apt-http.log"
    pid, start_time = spawn_daemon(
        argv, pid_file=paths.run / "apt-http.pid", log_file=log, cgroup_dirs=cgroup_dirs
    )
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not process_alive(pid, start_time):
            break
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return ProcessRecord(
                    pid=pid, start_time=start_time, cgroups=tuple(str(d) for d in cgroup_dirs)
                )
        except OSError:
            time.sleep(0.05)
    raise LabError(
        f"the lab's apt server did not start on {address}:{port}",
        hint=f"is the port taken? pick another with apt_port; log {log}:\n{tail_file(log)}",
    )
