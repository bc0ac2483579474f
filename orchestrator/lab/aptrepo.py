"""The lab's signed apt repository (test packages to patch between) and its HTTP server.

Suite `lab` has acme-agent 1.0-1 and 1.0-2 (the "security fix") and acme-tool 1.0-1; suite
`broken` has acme-agent 1.0-3 whose postinst fails. Packages are built with `dpkg-deb`, indexed
with `apt-ftparchive` and signed (InRelease + Release.gpg) with a throwaway gpg key kept in the
lab's state directory; the armored public key is exported beside it. The server is
`python -m http.server` bound to the bridge address, started detached in its own cgroup.
Imports only `orchestrator.errors` and sibling modules.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import LabError

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
echo "acme-tool 1.0-1 (agent $(cat /usr/share/acme-agent/VERSION 2>/dev/null || echo missing))"
"""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    suite: str
    files: tuple[tuple[str, str, int], ...]  # (path, content, mode)
    scripts: tuple[tuple[str, str], ...] = ()  # (maintainer script name, content)
    depends: str = ""
    description: str = ""


def _agent(version: str, suite: str, postinst: str) -> Package:
    return Package(
        name="acme-agent",
        version=version,
        suite=suite,
        files=(
            ("usr/bin/acme-agent", AGENT_SCRIPT, 0o755),
            ("lib/systemd/system/acme-agent.service", AGENT_UNIT, 0o644),
            ("usr/share/acme-agent/VERSION", version + "\n", 0o644),
        ),
        scripts=(("postinst", postinst), ("prerm", AGENT_PRERM), ("postrm", AGENT_POSTRM)),
        description="ACME agent (patchring lab test package)",
    )


PACKAGES = (
    _agent("1.0-1", "lab", AGENT_POSTINST),
    _agent("1.0-2", "lab", AGENT_POSTINST),
    Package(
        name="acme-tool",
        version="1.0-1",
        suite="lab",
        files=(("usr/bin/acme-tool", TOOL_SCRIPT, 0o755),),
        depends="acme-agent (>= 1.0-1)",
        description="ACME tool (patchring lab test package)",
    ),
    _agent("1.0-3", "broken", BROKEN_POSTINST),
)
SUITES = ("lab", "broken")


def build_repository(paths: LabPaths, lab: str) -> str:
    """Build and sign the repository under the state directory; returns the armored public key."""
    repo = paths.apt_repo
    shutil.rmtree(repo, ignore_errors=True)
    scratch = paths.root / "apt-build"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        for package in PACKAGES:
            _build_deb(package, scratch, repo / "pool" / package.suite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fingerprint = _ensure_signing_key(paths, lab)
    try:
        for suite in SUITES:
            _index_suite(repo, suite)
            _sign_suite(paths, repo / "dists" / suite, fingerprint)
        key = run_command([*_gpg(paths), "--armor", "--export", fingerprint]).stdout
    finally:
        run_command(["gpgconf", "--homedir", str(paths.gnupg), "--kill", "all"], check=False)
    paths.archive_key.write_text(key)
    (repo / KEY_FILE_NAME).write_text(key)
    return key


def _build_deb(package: Package, scratch: Path, pool: Path) -> None:
    root = scratch / f"{package.name}_{package.version}"
    (root / "DEBIAN").mkdir(parents=True)
    for relative, content, mode in package.files:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
    control = [
        f"Package: {package.name}",
        f"Version: {package.version}",
        "Architecture: all",
        f"Maintainer: {MAINTAINER}",
        "Section: admin",
        "Priority: optional",
    ]
    if package.depends:
        control.append(f"Depends: {package.depends}")
    control.append(f"Description: {package.description}\n Built by patchring for its local lab.")
    (root / "DEBIAN/control").write_text("\n".join(control) + "\n")
    for name, content in package.scripts:
        script = root / "DEBIAN" / name
        script.write_text(content)
        script.chmod(0o755)
    pool.mkdir(parents=True, exist_ok=True)
    deb = pool / f"{package.name}_{package.version}_all.deb"
    run_command(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])


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


def _index_suite(repo: Path, suite: str) -> None:
    binary = repo / "dists" / suite / "main" / f"binary-{ARCHITECTURE}"
    binary.mkdir(parents=True, exist_ok=True)
    packages = run_command(["apt-ftparchive", "packages", f"pool/{suite}"], cwd=repo).stdout
    (binary / "Packages").write_text(packages)
    (binary / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
    options = {
        "Origin": "patchring",
        "Label": "patchring lab",
        "Suite": suite,
        "Codename": suite,
        "Architectures": ARCHITECTURE,
        "Components": "main",
        "Description": f"patchring lab test packages ({suite})",
    }
    argv = ["apt-ftparchive"]
    for key, value in options.items():
        argv += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
    release = run_command([*argv, "release", f"dists/{suite}"], cwd=repo).stdout
    (repo / "dists" / suite / "Release").write_text(release)


def _sign_suite(paths: LabPaths, suite_dir: Path, fingerprint: str) -> None:
    release = str(suite_dir / "Release")
    signer = [*_gpg(paths), "--yes", "--local-user", fingerprint, "--digest-algo", "SHA512"]
    run_command([*signer, "--clearsign", "--output", str(suite_dir / "InRelease"), release])
    run_command(
        [*signer, "--armor", "--detach-sign", "--output", str(suite_dir / "Release.gpg"), release]
    )


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
