"""Writes the inventory YAML of a running lab, in the shape the inventory loader reads.

Hand-formatted (not yaml.dump) so the file reads like one a person wrote: a header comment,
`ssh`, `vars` (apt URL, armored key as a block scalar, the security tracker fixture) and `hosts`
with flow-style groups and each host's Debian release (`debian_release`, a host var).
Scalars that YAML could misread are emitted as double-quoted JSON strings. Written atomically.
Pure apart from the final write; imports only sibling modules.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .config import LabHost

_PLAIN = re.compile(r"^[A-Za-z0-9_/.][A-Za-z0-9_/.:@+-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def _scalar(value: str) -> str:
    if (
        _PLAIN.match(value)
        and value.lower() not in _RESERVED
        and not re.match(r"^[0-9.+-]+$", value)
    ):
        return value
    return json.dumps(value)


def render_inventory(
    *,
    lab: str,
    identity_file: Path,
    known_hosts: Path,
    apt_url: str,
    apt_key: str,
    hosts: tuple[LabHost, ...],
    security_data: Path | None = None,
) -> str:
    lines = [
        f'# Written by `patchring lab up` for the lab "{lab}". '
        "Do not edit: it is rewritten on every lab up.",
        "ssh:",
        "  user: root",
        f"  identity_file: {_scalar(str(identity_file))}",
        f"  known_hosts: {_scalar(str(known_hosts))}",
        "vars:",
        f"  lab_apt_url: {_scalar(apt_url)}",
        "  lab_apt_key: |",
    ]
    lines += [f"    {line}" if line else "" for line in apt_key.strip().splitlines()]
    if security_data is not None:
        lines += [
            "  # The lab's CVE data, in the Debian Security Tracker's JSON format (its packages,",
            "  # and a few real Debian ones): what the tracker would say about this lab.",
            f"  lab_security_data: {_scalar(str(security_data))}",
        ]
    lines.append("hosts:")
    for host in hosts:
        lines += [
            f"  {_scalar(host.name)}:",
            f"    address: {host.address}",
            f"    ring: {_scalar(host.ring)}",
            f"    groups: [{', '.join(_scalar(group) for group in host.groups)}]",
            "    vars:",
            f"      debian_release: {_scalar(host.release)}",
        ]
    return "\n".join(lines) + "\n"


def write_inventory(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
