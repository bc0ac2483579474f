"""The assessment probe: one POSIX shell script per host, and the framing of what it prints.

`build_assess_script` returns the single remote command that collects everything
`probeparse.build_assessment` needs. Each part runs under coreutils `timeout` and is framed by
marker lines carrying a per-run nonce, `@@patchring-assess NONCE begin NAME` and
`@@patchring-assess NONCE end NAME RC`, so that no package name, file or message a host prints
can forge or end a section, and a part that timed out (RC 124) or failed is named.
`split_sections` parses the frames; `probe_output` turns them into a `ProbeOutput`. Pure: no
I/O, imports only the package's parsers (for their command constants).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote

from orchestrator.patching.probeparse import (
    DELETED_MAPS_COMMAND,
    INSTALLED_COMMAND,
    POLICY_COMMAND,
    SIMULATE_COMMAND,
    ProbeOutput,
)

SCRIPT_VERSION = "1"
PART_TIMEOUT = 60
REFRESH_SECTION = "refresh"
TIMED_OUT = 124  # coreutils `timeout` exit status when the limit is reached
_NONCE = re.compile(r"^[0-9a-f]{8,64}$")

# Parts that run after the optional refresh, in order: (section name, shell command). The apt
# list stamps: `update-success-stamp` (apt's daily job), the list directory's `partial/` folder
# (every `apt-get update` uses it) and the Release files; the newest counts.
_PARTS: tuple[tuple[str, str], ...] = (
    ("os_release", "cat /etc/os-release"),
    ("installed", INSTALLED_COMMAND),
    ("simulated_upgrade", SIMULATE_COMMAND),
    ("policy", POLICY_COMMAND),
    ("reboot_required", "if [ -e /run/reboot-required ]; then echo yes; else echo no; fi"),
    ("reboot_packages", "cat /run/reboot-required.pkgs 2>/dev/null; true"),
    ("running_kernel", "uname -r"),
    ("kernel_build", "uname -v"),
    ("boot_files", 'for f in /boot/vmlinuz-*; do [ -e "$f" ] && echo "$f"; done; true'),
    (
        "kernel_package_version",
        "dpkg-query -W -f='${Version}' \"linux-image-$(uname -r)\" 2>/dev/null; true",
    ),
    (
        "deleted_maps",
        # grep exits 1 when nothing matches and 2 on a process that vanished: neither is a failure.
        f"{DELETED_MAPS_COMMAND} 2>/dev/null; true",
    ),
    (
        "cgroups",
        "for p in $(grep -l ' (deleted)$' /proc/[0-9]*/maps 2>/dev/null"
        " | sed -n 's#^/proc/\\([0-9]*\\)/maps$#\\1#p'); do"
        ' grep -H "" "/proc/$p/cgroup" 2>/dev/null; done; true',
    ),
    (
        "lists_mtimes",
        "stat -c %Y /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists/partial"
        " /var/lib/apt/lists/*Release 2>/dev/null; true",
    ),
)
SECTIONS = tuple(name for name, _ in _PARTS)


def refresh_command(timeout: float) -> str:
    """`apt-get update`, bounded twice: apt's own network timeout and the part's `timeout`."""
    seconds = max(1, int(timeout))
    return (
        f"LC_ALL=C apt-get -q update -o Acquire::http::Timeout={min(seconds, 30)}"
        f" -o Acquire::Retries=0 2>&1"
    )


def build_assess_script(
    nonce: str, refresh_timeout: float | None = None, part_timeout: int = PART_TIMEOUT
) -> str:
    """The whole probe; `refresh_timeout` (seconds) adds `apt-get update` first. `nonce` is
    the caller's random hex string (8-64 characters) that frames every section; each other
    part may run `part_timeout` seconds."""
    if not _NONCE.match(nonce):
        raise ValueError("nonce must be 8-64 lowercase hex characters")
    if part_timeout < 1:
        raise ValueError("part_timeout must be at least 1 s (`timeout 0` would mean no limit)")
    mark = f"@@patchring-assess {nonce}"
    lines = [
        "export LC_ALL=C",
        f"echo {quote(f'{mark} start {SCRIPT_VERSION}')}",
        "part() {",
        f"  printf '%s begin %s\\n' {quote(mark)} \"$1\"",
        '  timeout -k 5 "$2" sh -c "$3" </dev/null',
        "  rc=$?",
        f'  printf \'\\n%s end %s %s\\n\' {quote(mark)} "$1" "$rc"',
        "}",
    ]
    if refresh_timeout is not None:
        seconds = max(1, int(refresh_timeout))
        lines.append(f"part {REFRESH_SECTION} {seconds} {quote(refresh_command(seconds))}")
    lines += [f"part {name} {part_timeout} {quote(command)}" for name, command in _PARTS]
    lines.append(f"echo {quote(f'{mark} finish')}")
    return "\n".join(lines) + "\n"


def script_timeout(refresh_timeout: float | None) -> float:
    """The longest the whole script may take: every part at its limit, plus the kill grace."""
    refresh = 0 if refresh_timeout is None else max(1, int(refresh_timeout)) + 5
    return float(refresh + len(_PARTS) * (PART_TIMEOUT + 5))


@dataclass(frozen=True)
class Section:
    """One framed part of the probe's output: its text and its exit status (None: cut off)."""

    name: str
    text: str
    exit_status: int | None


@dataclass(frozen=True)
class FramedOutput:
    """The sections a probe printed, and whether its last line came (False: cut short)."""

    sections: dict[str, Section]
    finished: bool

    def problems(self) -> list[str]:
        """What went wrong, one phrase per part: timed out, failed, cut off or missing."""
        found = []
        for name in (REFRESH_SECTION, *SECTIONS):
            section = self.sections.get(name)
            if section is None:
                if name != REFRESH_SECTION:
                    found.append(f"{name}: no output")
            elif section.exit_status is None:
                found.append(f"{name}: cut off")
            elif section.exit_status == TIMED_OUT:
                found.append(f"{name}: timed out")
            elif section.exit_status != 0:
                found.append(f"{name}: exit status {section.exit_status}")
        return found


def split_sections(text: str, nonce: str) -> FramedOutput:
    """The framed sections of the probe's output. Lines outside a frame, frames with another
    nonce and unknown section names are ignored; a section that never ends keeps what it
    printed and has exit status None."""
    mark = f"@@patchring-assess {nonce} "
    sections: dict[str, Section] = {}
    current: str | None = None
    body: list[str] = []
    finished = False
    for line in text.split("\n"):
        if not line.startswith(mark):
            if current is not None:
                body.append(line)
            continue
        words = line[len(mark) :].split(" ")
        if words[0] == "begin" and len(words) == 2:
            if current is not None:
                sections[current] = Section(current, "\n".join(body), None)
            current, body = words[1], []
        elif words[0] == "end" and len(words) == 3 and words[1] == current:
            # the end marker follows a newline the script adds: drop it again
            if body and body[-1] == "":
                body.pop()
            status = int(words[2]) if words[2].isdigit() else None
            sections[current] = Section(current, "\n".join(body), status)
            current, body = None, []
        elif words == ["finish"]:
            finished = True
    if current is not None:
        sections[current] = Section(current, "\n".join(body), None)
    known = {REFRESH_SECTION, *SECTIONS}
    return FramedOutput({k: v for k, v in sections.items() if k in known}, finished)


def probe_output(framed: FramedOutput) -> ProbeOutput:
    """The parsers' input from the framed sections (an absent section is empty text)."""

    def text(name: str) -> str:
        section = framed.sections.get(name)
        return section.text if section is not None else ""

    return ProbeOutput(
        os_release=text("os_release"),
        installed=text("installed"),
        simulated_upgrade=text("simulated_upgrade"),
        policy=text("policy"),
        reboot_required=text("reboot_required").strip() == "yes",
        reboot_packages=text("reboot_packages"),
        running_kernel=text("running_kernel").strip(),
        boot_files=text("boot_files"),
        kernel_build=text("kernel_build").strip(),
        kernel_package_version=text("kernel_package_version").strip(),
        deleted_maps=text("deleted_maps"),
        cgroups=text("cgroups"),
        lists_mtimes=text("lists_mtimes"),
    )
