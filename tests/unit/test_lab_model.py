"""The lab's pure parts: hosts' Debian releases, the security tracker fixture, the inventory it
writes (read back by the real inventory loader) and the test package templates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.errors import LabError
from orchestrator.inventory import load_inventory
from orchestrator.lab import LabConfig, LabHost, security_tracker_data, write_security_data
from orchestrator.lab.aptrepo import make_package, resolve_suite
from orchestrator.lab.config import plan_hosts
from orchestrator.lab.inventory_file import render_inventory
from orchestrator.lab.state import LabPaths, load_record
from orchestrator.policy.projectsource import WorktreeSource

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n-----END PGP PUBLIC KEY BLOCK-----\n"


def releases(config: LabConfig) -> list[tuple[str, str]]:
    return [(plan.ring, plan.release) for plan in plan_hosts(config)]


def test_a_lab_boots_bookworm_unless_told_otherwise() -> None:
    assert {release for _ring, release in releases(LabConfig(hosts=6))} == {"bookworm"}
    assert {release for _ring, release in releases(LabConfig(release="trixie"))} == {"trixie"}


def test_a_mixed_lab_gives_both_releases_to_every_ring_and_group_of_two_or_more() -> None:
    plans = plan_hosts(LabConfig(hosts=10, release="mixed"))
    assert [plan.release[0] for plan in plans] == list("bttbbttbbt")
    for ring in ("pilot", "broad"):
        assert {plan.release for plan in plans if plan.ring == ring} == {"bookworm", "trixie"}
    for group in ("web", "db"):
        assert {plan.release for plan in plans if group in plan.groups} == {"bookworm", "trixie"}
    assert releases(LabConfig(hosts=3, release="mixed")) == [
        ("canary", "bookworm"),
        ("pilot", "trixie"),
        ("broad", "trixie"),
    ]


def test_per_ring_releases_override_the_lab_release() -> None:
    config = LabConfig(
        hosts=6, release="bookworm", ring_releases=(("canary", "trixie"), ("broad", "mixed"))
    )
    assert releases(config) == [
        ("canary", "trixie"),
        ("pilot", "bookworm"),
        ("pilot", "bookworm"),
        ("broad", "bookworm"),
        ("broad", "bookworm"),
        ("broad", "trixie"),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LabConfig(release="buster"), "the lab cannot boot Debian 'buster'"),
        (LabConfig(ring_releases=(("pilot", "sid"),)), "the lab cannot boot Debian 'sid'"),
        (
            LabConfig(ring_releases=(("prod", "trixie"),)),
            "a release is given for ring 'prod', which the lab does not have",
        ),
    ],
)
def test_unknown_releases_and_rings_are_refused(config: LabConfig, message: str) -> None:
    with pytest.raises(LabError) as caught:
        plan_hosts(config)
    assert caught.value.message == message
    assert caught.value.hint


TRACKER_STATUSES = {"resolved", "open", "undetermined"}
TRACKER_URGENCIES = {
    "unimportant",
    "low",
    "medium",
    "high",
    "not yet assigned",
    "end-of-life",
    "low**",
    "medium**",
    "high**",
}
ISSUE_KEYS = {"description", "scope", "debianbug", "releases"}
RELEASE_KEYS = {"status", "repositories", "fixed_version", "urgency", "nodsa", "nodsa_reason"}


def test_tracker_fixture_has_exactly_the_trackers_shape() -> None:
    data = security_tracker_data()
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    for source, issues in data.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", source)
        for issue_id, issue in issues.items():
            assert re.fullmatch(r"CVE-\d{4}-\d{4,}|TEMP-\d{7}-[0-9A-F]{6}", issue_id)
            assert set(issue) <= ISSUE_KEYS and {"description", "releases"} <= set(issue)
            assert issue["scope"] in ("local", "remote")
            for codename, entry in issue["releases"].items():
                assert codename in ("bookworm", "trixie", "sid")
                assert set(entry) <= RELEASE_KEYS
                assert entry["status"] in TRACKER_STATUSES
                assert entry["urgency"] in TRACKER_URGENCIES
                # fixed_version exactly when resolved; None-valued keys are left out
                assert ("fixed_version" in entry) == (entry["status"] == "resolved")
                assert all(value is not None for value in entry.values())
                repositories = entry["repositories"]
                assert codename in repositories
                assert set(repositories) <= {codename, f"{codename}-security"}


def test_tracker_fixture_describes_the_lab_packages_and_real_ones() -> None:
    data = security_tracker_data()
    agent = data["acme-agent"]["CVE-2026-10001"]["releases"]
    for codename in ("bookworm", "trixie"):
        assert agent[codename]["status"] == "resolved"
        assert agent[codename]["fixed_version"] == "1.0-2"
        assert agent[codename]["urgency"] == "high"
        assert agent[codename]["repositories"][f"{codename}-security"] == "1.0-2"
    library = data["libacme"]["CVE-2026-10002"]["releases"]["trixie"]
    assert (library["fixed_version"], library["urgency"]) == ("1.1-1", "medium")
    unfixed = data["acme-agent"]["CVE-2026-10004"]["releases"]["bookworm"]
    assert unfixed["status"] == "open" and "fixed_version" not in unfixed
    assert data["acme-tool"]["CVE-2026-10005"]["releases"]["trixie"]["urgency"] == "unimportant"
    kernel = data["acme-kernel"]["CVE-2026-10003"]["releases"]
    assert (kernel["bookworm"]["fixed_version"], kernel["trixie"]["fixed_version"]) == (
        "1.0-2",
        "0",  # not affected
    )
    assert {"openssl", "bash", "systemd"} <= set(data)
    assert "acme-libuser" not in data  # a package the tracker knows nothing about


def test_tracker_fixture_extra_issues_and_file(tmp_path: Path) -> None:
    extra = {
        "acme-agent": {
            "CVE-2026-10009": {
                "description": "found later",
                "scope": "remote",
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "repositories": {"bookworm": "1.0-2"},
                        "fixed_version": "1.0-4",
                        "urgency": "high",
                    }
                },
            }
        }
    }
    path = write_security_data(tmp_path / "state" / "tracker.json", extra)
    written = json.loads(path.read_text())
    assert set(written["acme-agent"]) == {"CVE-2026-10001", "CVE-2026-10004", "CVE-2026-10009"}
    assert written == security_tracker_data(extra)
    assert "CVE-2026-10009" not in security_tracker_data()["acme-agent"]
    assert list(tmp_path.joinpath("state").iterdir()) == [path]  # no temporary file left


def _host(name: str, number: int, ring: str, release: str) -> LabHost:
    return LabHost(
        name=name,
        address=f"10.213.0.{10 + number}",
        ring=ring,
        groups=("lab", "web"),
        state="running",
        ssh_ok=True,
        release=release,
    )


def test_lab_inventory_carries_each_hosts_release_and_the_tracker_file(tmp_path: Path) -> None:
    text = render_inventory(
        lab="lab",
        identity_file=Path("/state/id_ed25519"),
        known_hosts=Path("/state/known_hosts"),
        apt_url="http://10.213.0.1:8080/",
        apt_key=KEY,
        hosts=(_host("lab-01", 1, "canary", "bookworm"), _host("lab-02", 2, "pilot", "trixie")),
        security_data=Path("/state/security-tracker.json"),
    )
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "lab.yml").write_text(text)
    inventory = load_inventory(WorktreeSource(tmp_path))
    assert inventory.vars["lab_security_data"].value == "/state/security-tracker.json"
    assert inventory.hosts["lab-01"].vars["debian_release"].value == "bookworm"
    assert inventory.hosts["lab-02"].vars["debian_release"].value == "trixie"
    assert inventory.vars["lab_apt_key"].value == KEY


def test_test_packages_build_any_version_and_bad_names_are_refused() -> None:
    library = make_package("libacme1", "1.1-1+b1")
    assert (library.source, library.architecture, library.multi_arch) == (
        "libacme",
        "amd64",
        "same",
    )
    assert library.deb_name == "libacme1_1.1-1+b1_amd64.deb"
    assert make_package("acme-agent", "1:2.0~rc1-1").deb_name == "acme-agent_2.0~rc1-1_all.deb"
    broken = make_package("acme-kernel", "1.0-9", broken=True)
    postinst = dict(broken.scripts)["postinst"]
    assert "acme-kernel: simulated broken postinst" in postinst and "exit 1" in postinst
    assert "reboot-required" in dict(make_package("acme-kernel", "1.0-9").scripts)["postinst"]
    with pytest.raises(LabError, match="the lab has no test package 'acme-nope'"):
        make_package("acme-nope", "1.0-1")
    with pytest.raises(LabError, match=r"invalid Debian version '1\.0 -1'"):
        make_package("acme-agent", "1.0 -1")
    assert resolve_suite("lab-security") == ("bookworm-security", "trixie-security")
    assert resolve_suite("trixie-security") == ("trixie-security",)
    with pytest.raises(LabError, match="has no suite 'stable'"):
        resolve_suite("stable")


def test_filler_packages_are_numbered_and_tiny() -> None:
    filler = make_package("acme-filler-250", "1.0-1")
    assert filler.deb_name == "acme-filler-250_1.0-1_all.deb"
    assert [path for path, _, _ in filler.files] == ["usr/share/acme-filler-250/VERSION"]
    assert filler.scripts == ()
    for name in ("acme-filler-0", "acme-filler-10000", "acme-filler-x", "acme-filler-"):
        with pytest.raises(LabError, match="the lab has no test package"):
            make_package(name, "1.0-1")


def test_a_record_written_before_releases_existed_reads_as_bookworm(tmp_path: Path) -> None:
    old = {
        "name": "lab",
        "hosts": 1,
        "subnet": "10.213.0.0/24",
        "rings": ["canary"],
        "apt_port": 8080,
        "bridge": "pr-lab",
        "base_image": "/cache/images/debian-bookworm-ae0f3ec6ed916103",
        "inventory_path": None,
        "host_records": [
            {
                "name": "lab-01",
                "index": 1,
                "address": "10.213.0.11",
                "ring": "canary",
                "groups": ["lab", "web"],
                "netns": "pr-lab-01",
                "veth": "prlab-01",
                "runner": None,
            }
        ],
        "http": None,
        "version": 1,
    }
    (tmp_path / "state.json").write_text(json.dumps(old))
    record = load_record(LabPaths(tmp_path))
    assert record is not None
    assert record.base_images == {"bookworm": "/cache/images/debian-bookworm-ae0f3ec6ed916103"}
    assert [host.release for host in record.host_records] == ["bookworm"]


def test_lab_down_removes_only_the_inventory_lab_up_wrote(tmp_path: Path) -> None:
    from orchestrator.lab.fleet import _remove_lab_inventory

    written = tmp_path / "lab.yml"
    written.write_text('# Written by `patchring lab up` for the lab "lab". Do not edit.\nssh: {}\n')
    assert _remove_lab_inventory("lab", str(written)) == written
    assert not written.exists()
    edited = tmp_path / "mine.yml"
    edited.write_text("# my fleet\nhosts: {}\n")
    other_lab = tmp_path / "other.yml"
    other_lab.write_text('# Written by `patchring lab up` for the lab "bench". Do not edit.\n')
    assert _remove_lab_inventory("lab", str(edited)) is None
    assert _remove_lab_inventory("lab", str(other_lab)) is None
    assert _remove_lab_inventory("lab", str(tmp_path / "gone.yml")) is None
    assert edited.exists() and other_lab.exists()


def test_stopping_a_lab_that_is_not_running_says_so_and_succeeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from orchestrator.cli.main import main

    assert main(["lab", "down", "--name", "never-started", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "Lab 'never-started' is not running; nothing to stop.\n"
