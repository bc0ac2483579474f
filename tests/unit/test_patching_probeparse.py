"""Probe output parsers: real-looking samples (PATCHING.md), junk lines skipped and counted."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.model.patching import AptOrigin
from orchestrator.patching.probeparse import (
    ProbeOutput,
    build_assessment,
    enrich_origins,
    group_stale_processes,
    parse_deleted_maps,
    parse_installed,
    parse_lists_mtime,
    parse_os_release,
    parse_policy_releases,
    parse_process_units,
    parse_release_string,
    parse_simulated_upgrade,
    reboot_status,
)

INSTALLED = """\
ii  libssl3:amd64 3.0.20-1~deb12u2 openssl 3.0.20-1~deb12u2 amd64
ii  bash 5.2.15-2+b13 bash 5.2.15-2 amd64
ii  libcap2:amd64 1:2.66-4+deb12u3+b1 libcap2 1:2.66-4+deb12u3 amd64
ii  dmsetup 2:1.02.185-2 lvm2 2.03.16-2 amd64
hi  nginx 1.22.1-9 nginx 1.22.1-9 amd64
rc  old-config 1.0-1 old-config 1.0-1 amd64
iU  half-done 2.0-1 half-done 2.0-1 amd64
ii  libc6:i386 2.36-9+deb12u9 glibc 2.36-9+deb12u9 i386
this is not dpkg output
ii  short-line 1.0
ii  badversion abc badversion abc amd64
"""

SIMULATE = """\
NOTE: This is only a simulation!
Reading package lists...
Building dependency tree...
Calculating upgrade...
The following packages will be upgraded:
  libssl3 telnet
Inst libssl3 [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst telnet (0.17+2.4-2+deb12u3 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [all])
Inst libc6:i386 [2.36-9+deb12u9] (2.36-9+deb12u10 Debian:12.15/oldstable [i386]) []
Inst garbled line without parentheses
Inst evil [1.0] (not;a;version Debian:12/oldstable [amd64])
Conf libssl3 (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Conf telnet (0.17+2.4-2+deb12u3 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [all])
"""

POLICY = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/non-free-firmware amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,{nff}
     origin deb.debian.org
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
     release nonsense-without-equals
Pinned packages:
""".format(nff="c=non-free-firmware,b=amd64")


def test_installed_packages_with_sources_binnmus_and_epochs() -> None:
    parsed = parse_installed(INSTALLED)
    rows = {p.name: (p.version, p.source, p.source_version, p.architecture) for p in parsed.items}
    assert rows == {
        "libssl3": ("3.0.20-1~deb12u2", "openssl", "3.0.20-1~deb12u2", "amd64"),
        "bash": ("5.2.15-2+b13", "bash", "5.2.15-2", "amd64"),
        "libcap2": ("1:2.66-4+deb12u3+b1", "libcap2", "1:2.66-4+deb12u3", "amd64"),
        "dmsetup": ("2:1.02.185-2", "lvm2", "2.03.16-2", "amd64"),
        "nginx": ("1.22.1-9", "nginx", "1.22.1-9", "amd64"),  # held is still installed
        "libc6": ("2.36-9+deb12u9", "glibc", "2.36-9+deb12u9", "i386"),
    }
    # rc and iU are known states, not junk; the prose, the short line and "abc" are junk
    assert parsed.skipped == 3


def test_simulated_upgrade_inst_lines() -> None:
    parsed = parse_simulated_upgrade(SIMULATE)
    assert [
        (u.package, u.installed_version, u.candidate_version, u.architecture) for u in parsed.items
    ] == [
        ("libssl3", "3.0.20-1~deb12u2", "3.0.22-1~deb12u2", "amd64"),
        ("telnet", None, "0.17+2.4-2+deb12u3", "all"),
        ("libc6", "2.36-9+deb12u9", "2.36-9+deb12u10", "i386"),
    ]
    assert parsed.items[1].origins == (
        AptOrigin(label="Debian", version="12.15", archive="oldstable"),
        AptOrigin(label="Debian-Security", version="12", archive="oldstable-security"),
    )
    assert parsed.skipped == 2  # the garbled Inst line and the bad version; Conf is not junk


def test_release_string_forms() -> None:
    assert parse_release_string("Debian-Security:12/oldstable-security") == AptOrigin(
        label="Debian-Security", version="12", archive="oldstable-security"
    )
    assert parse_release_string("Lab:stable") == AptOrigin(label="Lab", archive="stable")
    assert parse_release_string("13/stable") == AptOrigin(version="13", archive="stable")
    assert parse_release_string("localhost") == AptOrigin(archive="localhost")


def test_policy_releases_and_enrichment() -> None:
    releases = parse_policy_releases(POLICY)
    assert releases.skipped == 1
    assert [(r.archive, r.codename, r.component, r.site) for r in releases.items] == [
        ("oldstable-security", "bookworm-security", "non-free-firmware", "deb.debian.org"),
        ("oldstable-security", "bookworm-security", "main", "deb.debian.org"),
        ("oldstable", "bookworm", "main", "deb.debian.org"),
    ]
    updates = enrich_origins(parse_simulated_upgrade(SIMULATE).items, releases.items)
    libssl3 = updates[0]
    # Inst lines name no component: every component of the archive is a possible origin
    assert {(o.origin, o.codename, o.component) for o in libssl3.origins} == {
        ("Debian", "bookworm-security", "main"),
        ("Debian", "bookworm-security", "non-free-firmware"),
    }
    assert [o.codename for o in updates[2].origins] == ["bookworm"]


def test_unknown_origin_is_kept_as_reported() -> None:
    updates = parse_simulated_upgrade("Inst foo [1.0] (1.1 Lab:9/lab-stable [amd64])\n").items
    assert enrich_origins(updates, ())[0].origins == (
        AptOrigin(label="Lab", version="9", archive="lab-stable"),
    )


MAPS = """\
/proc/812/maps:7f2c1a000000-7f2c1a0a0000 r-xp 00000000 fe:01 131 \
                      /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)
/proc/812/maps:7f2c1a200000-7f2c1a2a0000 r--p 00000000 fe:01 131 \
                      /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)
/proc/812/maps:7f2c1b000000-7f2c1b001000 rw-s 00000000 00:01 9 /memfd:pulseaudio (deleted)
/proc/900/maps:7f00-7f01 r-xp 00000000 fe:01 77 /usr/lib/x86_64-linux-gnu/libcrypto.so.3 (deleted)
/proc/901/maps:7f00-7f01 rw-s 00000000 00:05 3 /dev/zero (deleted)
/proc/902/maps:7f00-7f01 rw-s 00000000 00:05 3 /SYSV00000000 (deleted)
grep: /proc/77/maps: Permission denied
"""

CGROUPS = """\
/proc/812/cgroup:0::/system.slice/nginx.service
/proc/900/cgroup:0::/user.slice/user-0.slice/session-3.scope
/proc/903/cgroup:1:name=systemd:/system.slice/cron.service
garbage
"""


def test_deleted_libraries_grouped_by_process_with_units() -> None:
    deleted = parse_deleted_maps(MAPS)
    assert deleted.items == (
        (812, "/usr/lib/x86_64-linux-gnu/libssl.so.3"),
        (900, "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
    )
    assert deleted.skipped == 1  # grep's permission message
    units = parse_process_units(CGROUPS)
    assert dict(units.items) == {812: "nginx.service", 900: "session-3.scope", 903: "cron.service"}
    assert units.skipped == 1
    stale = group_stale_processes(deleted.items, dict(units.items))
    assert [(s.pid, s.unit, s.deleted_files) for s in stale] == [
        (812, "nginx.service", ("/usr/lib/x86_64-linux-gnu/libssl.so.3",)),
        (900, "session-3.scope", ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3",)),
    ]


def test_reboot_facts() -> None:
    boot = "/boot/vmlinuz-6.1.0-9-amd64\n/boot/vmlinuz-6.1.0-10-amd64\n/boot/config-6.1.0-9\n"
    status = reboot_status(False, "", "6.1.0-9-amd64", boot)
    assert status.newest_kernel == "6.1.0-10-amd64"  # numerically newest, not by string
    assert status.kernel_outdated and status.required
    current = reboot_status(False, "", "6.1.0-10-amd64", boot)
    assert not current.kernel_outdated and not current.required
    build = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"
    abi = reboot_status(False, "", "6.1.0-10-amd64", boot, build, "6.1.193-1")
    assert abi.kernel_outdated  # same release, newer build installed
    assert not reboot_status(False, "", "6.1.0-10-amd64", boot, build, "6.1.192-3").required
    assert not reboot_status(False, "", "6.1.0-10-amd64", boot, "#1 SMP", "6.1.193-1").required
    flagged = reboot_status(True, "dbus\nlinux-image-6.1.0-57-amd64\ndbus\n", "", "")
    assert flagged.packages == ("dbus", "linux-image-6.1.0-57-amd64")
    assert flagged.required and not flagged.kernel_outdated


def test_os_release_and_lists_age() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n'
    assert parse_os_release(text) == "trixie"
    assert parse_os_release('VERSION_CODENAME="bookworm"\n') == "bookworm"
    assert parse_os_release("ID=debian\n") == ""
    assert parse_lists_mtime("1764590400\nnot-a-number\n1764500000\n") == datetime(
        2025, 12, 1, 12, 0, tzinfo=UTC
    )
    assert parse_lists_mtime("") is None
    assert parse_lists_mtime("99999999999999999999\n") is None  # no crash on absurd stamps


def test_build_assessment_never_raises_on_junk_and_counts_it() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    junk = "\x00\xff{{{\n" * 3
    output = ProbeOutput(
        os_release=junk,
        installed=junk,
        simulated_upgrade="Inst " + junk,
        policy=junk,
        deleted_maps=junk,
        cgroups=junk,
        lists_mtimes=junk,
        running_kernel=junk,
        boot_files=junk,
    )
    assessment = build_assessment("web-01", output, now)
    assert assessment.installed == () and assessment.pending == ()
    assert assessment.skipped_lines == 3 + 1 + 3 + 3
    full = build_assessment(
        "web-01",
        ProbeOutput(
            os_release="VERSION_CODENAME=bookworm\n",
            installed=INSTALLED,
            simulated_upgrade=SIMULATE,
            policy=POLICY,
            lists_mtimes=str(int(now.timestamp()) - 3600),
        ),
        now,
    )
    assert full.codename == "bookworm"
    assert len(full.pending) == 3 and full.pending[0].origins[0].origin == "Debian"
    assert full.lists_age_seconds == 3600


def test_mutated_probe_output_never_raises() -> None:
    """Deterministic fuzzing: every sample with characters dropped, doubled or replaced."""
    import random

    rng = random.Random(8)
    samples = [INSTALLED, SIMULATE, POLICY, MAPS, CGROUPS]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    for _ in range(300):
        mutated = []
        for sample in samples:
            chars = list(sample)
            for _ in range(rng.randint(1, 30)):
                index = rng.randrange(len(chars))
                chars[index] = rng.choice([" ", ":", "(", "[", "]", ")", "\n", "", "é", "0", "~"])
            mutated.append("".join(chars))
        output = ProbeOutput(
            os_release=mutated[0],
            installed=mutated[0],
            simulated_upgrade=mutated[1],
            policy=mutated[2],
            deleted_maps=mutated[3],
            cgroups=mutated[4],
            lists_mtimes=mutated[3],
            running_kernel=mutated[1][:20],
            boot_files=mutated[2],
            kernel_build=mutated[1][:60],
            kernel_package_version=mutated[0][:12],
        )
        assessment = build_assessment("fuzz", output, now)
        assert assessment.host == "fuzz"
