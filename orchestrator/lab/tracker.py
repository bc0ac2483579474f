"""The lab's security tracker fixture: CVE data in exactly the Debian Security Tracker's JSON.

The tracker serves `source package -> CVE (or TEMP-) id -> {description, scope, debianbug,
releases: {codename: {status, repositories, fixed_version, urgency, nodsa, nodsa_reason}}}`,
with keys whose value would be None left out. `status` is "resolved" (then `fixed_version` is
set; "0" means not affected), "open" or "undetermined"; `repositories` maps each repository of
the release (`bookworm`, `bookworm-security`) to the version it holds. This fixture describes
the lab's own packages (see `aptrepo`) and, with made-up CVE ids, a few real Debian packages of
the base images; fixed versions of those are chosen well below or just above what the images
hold, so that a rebuilt image does not change who is exposed. Pure apart from the final write;
imports only the standard library.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LAB_RELEASES = ("bookworm", "trixie")


def _release(
    status: str,
    urgency: str,
    repositories: Mapping[str, str],
    fixed_version: str | None = None,
    nodsa: str | None = None,
    nodsa_reason: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": status, "repositories": dict(repositories)}
    if fixed_version is not None:
        entry["fixed_version"] = fixed_version
    entry["urgency"] = urgency
    if nodsa is not None:
        entry["nodsa"] = nodsa
    if nodsa_reason is not None:
        entry["nodsa_reason"] = nodsa_reason
    return entry


def _issue(
    description: str, scope: str, releases: dict[str, Any], debianbug: int | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"description": description, "scope": scope}
    if debianbug is not None:
        issue["debianbug"] = debianbug
    issue["releases"] = releases
    return issue


def _lab(main: str, security: str | None = None) -> dict[str, dict[str, str]]:
    """`repositories` of a lab package in every lab release: its main and security versions."""
    result = {}
    for codename in LAB_RELEASES:
        repositories = {codename: main}
        if security is not None:
            repositories[f"{codename}-security"] = security
        result[codename] = repositories
    return result


def _both(builder: Any, repositories: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {codename: builder(repositories[codename]) for codename in LAB_RELEASES}


def lab_packages() -> dict[str, Any]:
    """The CVEs of the lab's test packages (source package names)."""
    agent_repos = _lab("1.0-2", "1.0-2")
    return {
        "acme-agent": {
            "CVE-2026-10001": _issue(
                "Remote code execution in acme-agent's config parser via a crafted "
                "agent.conf include directive.",
                "remote",
                _both(lambda repos: _release("resolved", "high", repos, "1.0-2"), agent_repos),
                debianbug=1100001,
            ),
            "CVE-2026-10004": _issue(
                "acme-agent logs the bearer token of failed requests in cleartext.",
                "local",
                _both(lambda repos: _release("open", "low", repos), agent_repos),
            ),
        },
        "libacme": {
            "CVE-2026-10002": _issue(
                "Heap buffer overflow in libacme's acme_parse_header() with over-long names.",
                "remote",
                _both(
                    lambda repos: _release("resolved", "medium", repos, "1.1-1"),
                    _lab("1.0-1", "1.1-1"),
                ),
                debianbug=1100002,
            ),
        },
        "acme-kernel": {
            "CVE-2026-10003": _issue(
                "Privilege escalation in the acme-kernel module loader (bookworm only: the "
                "trixie build never had the vulnerable code).",
                "local",
                {
                    "bookworm": _release(
                        "resolved", "high", _lab("1.0-1", "1.0-2")["bookworm"], "1.0-2"
                    ),
                    "trixie": _release("resolved", "high", _lab("1.0-1", "1.0-2")["trixie"], "0"),
                },
            ),
        },
        "acme-tool": {
            "CVE-2026-10005": _issue(
                "acme-tool --help output can be garbled by a crafted LANG variable.",
                "local",
                _both(lambda repos: _release("open", "unimportant", repos), _lab("1.0-1")),
            ),
            "TEMP-1100006-4B1D2E": _issue(
                "acme-tool writes its cache world-readable (no CVE id assigned yet).",
                "local",
                _both(
                    lambda repos: _release(
                        "open",
                        "not yet assigned",
                        repos,
                        nodsa="Minor issue",
                        nodsa_reason="postponed",
                    ),
                    _lab("1.0-1"),
                ),
            ),
        },
    }


def debian_packages() -> dict[str, Any]:
    """A few real Debian source packages of the base images, with made-up CVE ids."""
    openssl_repos = {
        "bookworm": {"bookworm": "3.0.17-1~deb12u2", "bookworm-security": "3.0.20-1~deb12u2"},
        "trixie": {"trixie": "3.5.4-1~deb13u2", "trixie-security": "3.5.9-1~deb13u1"},
        "sid": {"sid": "3.5.9-1"},
    }
    bash_repos = {
        "bookworm": {"bookworm": "5.2.15-2"},
        "trixie": {"trixie": "5.2.37-2"},
        "sid": {"sid": "5.3-1"},
    }
    systemd_repos = {
        "bookworm": {"bookworm": "252.39-1~deb12u1", "bookworm-security": "252.39-1~deb12u2"},
        "trixie": {"trixie": "257.9-1~deb13u1", "trixie-security": "257.13-1~deb13u1"},
        "sid": {"sid": "258.2-1"},
    }
    return {
        "openssl": {
            "CVE-2026-20101": _issue(
                "Out-of-bounds read in the X.509 name constraints check of OpenSSL.",
                "remote",
                {
                    "bookworm": _release(
                        "resolved", "high", openssl_repos["bookworm"], "3.0.11-1~deb12u1"
                    ),
                    "sid": _release("resolved", "high", openssl_repos["sid"], "3.0.11-1"),
                    "trixie": _release("resolved", "high", openssl_repos["trixie"], "3.0.11-1"),
                },
                debianbug=1100101,
            ),
            "CVE-2026-20102": _issue(
                "Timing side channel in OpenSSL's RSA decryption (Marvin-style).",
                "remote",
                {
                    "bookworm": _release(
                        "open", "low", openssl_repos["bookworm"], nodsa="Minor issue"
                    ),
                    "sid": _release("open", "low", openssl_repos["sid"]),
                    "trixie": _release("open", "low", openssl_repos["trixie"], nodsa="Minor issue"),
                },
            ),
        },
        "bash": {
            "CVE-2026-20301": _issue(
                "bash: command injection through crafted function export in the environment.",
                "local",
                {
                    "bookworm": _release(
                        "resolved", "medium", bash_repos["bookworm"], "5.2.15-2+deb12u1"
                    ),
                    "sid": _release("resolved", "medium", bash_repos["sid"], "5.3-1"),
                    "trixie": _release(
                        "resolved", "medium", bash_repos["trixie"], "5.2.37-2+deb13u1"
                    ),
                },
                debianbug=1100301,
            ),
        },
        "systemd": {
            "CVE-2026-20201": _issue(
                "systemd-coredump may expose memory of a setuid process to its user.",
                "local",
                {
                    "bookworm": _release(
                        "resolved", "low", systemd_repos["bookworm"], "252.38-1~deb12u1"
                    ),
                    "sid": _release("resolved", "low", systemd_repos["sid"], "257.9-1"),
                    "trixie": _release(
                        "resolved", "low", systemd_repos["trixie"], "257.9-1~deb13u1"
                    ),
                },
            ),
            "CVE-2026-20202": _issue(
                "systemd-networkd: crafted DHCPv6 reply crashes the daemon (NVD score only).",
                "remote",
                {
                    "bookworm": _release("open", "medium**", systemd_repos["bookworm"]),
                    "sid": _release("resolved", "medium**", systemd_repos["sid"], "0"),
                    "trixie": _release("resolved", "medium**", systemd_repos["trixie"], "0"),
                },
            ),
            "CVE-2026-20203": _issue(
                "systemd: journal entries of a user can be hidden by another user.",
                "local",
                {
                    codename: _release("open", "unimportant", systemd_repos[codename])
                    for codename in ("bookworm", "sid", "trixie")
                },
            ),
        },
    }


def security_tracker_data(extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The whole fixture; `extra` adds or replaces issues (source -> id -> issue) on top."""
    data = {**lab_packages(), **debian_packages()}
    for source, issues in (extra or {}).items():
        data.setdefault(source, {}).update(copy.deepcopy(dict(issues)))
    return data


def write_security_data(path: Path, extra: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write the fixture to `path` atomically, compact like the tracker's own answer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(security_tracker_data(extra), sort_keys=True) + "\n")
    os.replace(temporary, path)
    return path
