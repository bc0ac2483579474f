"""Patch baselines and the lock file without hosts: baseline validation messages pinned,
two baselines on one host, a malformed lock (located, exit 1, nothing changed), locked versions
pinned into desired state per host release (table-driven), the lock diff, and the
availability lines of the drift probe run by a real /bin/sh."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.drift.availability import offer_lines, unoffered_versions
from orchestrator.drift.observed import ObservedPackage
from orchestrator.drift.probe import parse_probe_output
from orchestrator.errors import ValidationError
from orchestrator.model.patchlock import (
    LOCK_SCHEMA_VERSION,
    ApprovedVersion,
    PatchLock,
    ReleaseLock,
)
from orchestrator.model.policy import Package, Patch
from orchestrator.patching.lockdiff import diff_locks, merge_unassessed
from orchestrator.patching.lockfile import dump_lock
from orchestrator.policy import WorktreeSource, load_project
from tests.unit.builders import desired as desired_state

INVENTORY = """\
ssh: {user: root, connect_timeout: 2}
hosts:
  h1: {address: 127.0.0.1, port: 2, ring: canary}
  h2: {address: 127.0.0.1, port: 2, ring: broad, vars: {debian_release: trixie}}
  h3: {address: 127.0.0.1, port: 2, ring: broad, vars: {debian_release: bullseye}}
"""
POLICY = """\
name: patching
select: {all: true}
patch_baseline:
  classification: all
"""
WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _approved(version: str, fixes: tuple[str, ...] = ()) -> ApprovedVersion:
    return ApprovedVersion(
        version=version, classification="security", first_seen=WHEN, fixes=fixes, reason="ok"
    )


def _lock(releases: dict[str, dict[str, str]], baseline: str = "patching") -> PatchLock:
    return PatchLock(
        schema_version=LOCK_SCHEMA_VERSION,
        baselines={
            baseline: {
                release: ReleaseLock(approved={p: _approved(v) for p, v in packages.items()})
                for release, packages in releases.items()
            }
        },
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "policies" / "patching.yml").write_text(POLICY)
    return tmp_path


def _errors(repo: Path) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_project(WorktreeSource(repo))
    return [str(d) for d in caught.value.diagnostics]


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        (
            "  classification: everything\n",
            "policies/patching.yml:4:19: error: expected 'security' or 'all', got 'everything'",
        ),
        (
            "  min_urgency: critical\n",
            "policies/patching.yml:4:16: error: expected 'unimportant', 'low', 'medium' or "
            "'high', got 'critical'",
        ),
        (
            "  include: ['linux image*']\n",
            "policies/patching.yml:4:13: error: 'linux image*' is not a package name or glob "
            "(like linux-image-*)",
        ),
        (
            "  min_age: 7\n",
            "policies/patching.yml:4:3: error: unknown key 'min_age' (did you mean "
            "'min_age_days'?)",
        ),
        (
            "  min_age_days: -1\n",
            "policies/patching.yml:4:17: error: must be greater than or equal to 0, got -1",
        ),
    ],
)
def test_baseline_fields_are_validated_with_locations(
    repo: Path, baseline: str, message: str
) -> None:
    (repo / "policies" / "patching.yml").write_text(
        "name: patching\nselect: {all: true}\npatch_baseline:\n" + baseline
    )
    assert _errors(repo) == [message]


def test_two_baselines_on_one_host_name_both(repo: Path) -> None:
    (repo / "policies" / "web.yml").write_text(
        "name: web\nselect: {hosts: [h2]}\npatch_baseline: {classification: security}\n"
    )
    assert _errors(repo) == [
        "policies/web.yml:3:1: error: host 'h2' is selected by two patch baselines: 'web' here "
        "and 'patching' at policies/patching.yml:3:1; a host follows one baseline (narrow one "
        "select)"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version: 1\nbaselines: [\n", "patches.lock.yml:3:1: error: "),
        (
            "schema_version: 2\n",
            "patches.lock.yml:1:17: error: lock file schema 2 is not supported (this patchring "
            "reads schema 1)",
        ),
        (
            "schema_version: 1\nbaselines:\n  patching:\n    bookworm:\n      approved:\n"
            "        acme-agent: {version: 'one', classification: security,"
            " first_seen: 2026-12-01T00:00:00Z, reason: x}\n",
            "patches.lock.yml:6:31: error: 'one' is not a Debian version",
        ),
    ],
)
def test_a_malformed_lock_is_located_exit_1_and_left_alone(
    repo: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = repo / "patches.lock.yml"
    lock.write_text(text)
    assert main(["patches", "lock", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert err.rstrip().endswith("nothing was changed")
    assert lock.read_text() == text
    assert main(["plan", "--repo", str(repo)]) == 1


def test_a_bad_now_is_exit_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patches", "lock", "--repo", str(repo), "--now", "2026-12-01"]) == 1
    assert "--now '2026-12-01' is not a date and time with a time zone" in capsys.readouterr().err
    assert not (repo / "patches.lock.yml").exists()


def test_no_baseline_is_exit_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "policies" / "patching.yml").write_text("name: patching\nselect: {all: true}\n")
    assert main(["patches", "lock", "--repo", str(repo)]) == 1
    assert "no selected host is governed by a patch baseline" in capsys.readouterr().err


def _pins(repo: Path) -> dict[str, list[tuple[str, str, str]]]:
    project = load_project(WorktreeSource(repo))
    found: dict[str, list[tuple[str, str, str]]] = {}
    for name, state in project.desired.items():
        found[name] = [
            (r.spec.package, r.spec.fixed, str(r.field_locations["fixed"]))
            for r in state.resources
            if isinstance(r.spec, Patch)
        ]
    return found


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        # One release in the lock: every host of the baseline without debian_release takes it;
        # a host naming another release gets that release's pins (none here).
        (
            {"bookworm": {"acme-agent": "1.0-2"}},
            {"h1": [("acme-agent", "1.0-2", "patches.lock.yml:12:20")], "h2": [], "h3": []},
        ),
        # Two releases: the host variable chooses.
        (
            {
                "bookworm": {"acme-agent": "1.0-2"},
                "trixie": {"acme-agent": "2.0-1", "zlib1g": "1:1.3"},
            },
            None,
        ),
        ({}, {"h1": [], "h2": [], "h3": []}),
    ],
)
def test_locked_versions_become_pins_for_the_host_release(
    repo: Path,
    releases: dict[str, dict[str, str]],
    expected: dict[str, list[tuple[str, str, str]]] | None,
) -> None:
    (repo / "patches.lock.yml").write_text(dump_lock(_lock(releases)))
    if expected is None:
        assert _errors(repo) == [
            "patches.lock.yml:5:3: error: baseline 'patching' has approvals for several releases "
            "(bookworm, trixie): set the inventory variable 'debian_release' of host 'h1' to say "
            "which applies"
        ]
        hosts = repo / "inventory" / "hosts.yml"
        hosts.write_text(
            hosts.read_text().replace(
                "ring: canary}", "ring: canary, vars: {debian_release: bookworm}}"
            )
        )
        pins = _pins(repo)
        assert [p[:2] for p in pins["h1"]] == [("acme-agent", "1.0-2")]
        assert [p[:2] for p in pins["h2"]] == [("acme-agent", "2.0-1"), ("zlib1g", "1:1.3")]
        assert pins["h3"] == []
        return
    assert _pins(repo) == expected


def test_a_policy_pin_below_the_locked_version_is_a_conflict(repo: Path) -> None:
    (repo / "patches.lock.yml").write_text(dump_lock(_lock({"bookworm": {"acme-agent": "1.0-2"}})))
    (repo / "policies" / "agent.yml").write_text(
        "name: agent\nselect: {hosts: [h1]}\npackages:\n  - {name: acme-agent, version: '1.0-1'}\n"
    )
    [error] = _errors(repo)
    assert error.startswith("policies/agent.yml:4:33: error: package 'acme-agent' version '1.0-1'")
    assert "below version '1.0-2' fixed by patches.lock.yml at patches.lock.yml:12:20" in error


def test_the_lock_diff_names_approved_replaced_held_and_removed() -> None:
    before = _lock({"bookworm": {"acme-agent": "1.0-2", "old": "1.0"}})
    after = _lock({"bookworm": {"acme-agent": "1.0-3", "zlib1g": "1:1.3"}})
    changes = [
        (c.kind, c.package, c.version, c.previous_version) for c in diff_locks(before, after)
    ]
    assert changes == [
        ("approved", "acme-agent", "1.0-3", "1.0-2"),
        ("approved", "zlib1g", "1:1.3", None),
        ("removed", "old", "1.0", None),
    ]
    assert diff_locks(after, after) == ()


def test_a_lock_of_one_release_keeps_the_others() -> None:
    previous = _lock({"bookworm": {"a": "1"}, "trixie": {"b": "2"}})
    new = _lock({"bookworm": {"a": "3"}})
    merged = merge_unassessed(new, previous, {"patching": {"bookworm"}})
    assert merged.approved_version("patching", "trixie", "b") == "2"
    assert merged.approved_version("patching", "bookworm", "a") == "3"


def _run_probe_lines(lines: list[str], fake_bin: Path) -> str:
    script = "echo 'patchring-probe 1'\n" + "\n".join(lines) + "\necho patchring-probe-end\n"
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin"}
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env).stdout


def test_the_probe_asks_apt_only_for_versions_the_host_needs(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    # dpkg-query: acme-agent installed at 1.0-1, zlib1g at 1:1.3 (already at its pin), nothing
    # else installed; apt-cache offers only acme-agent=1.0-2 and logs each question asked.
    (fake / "dpkg-query").write_text(
        '#!/bin/sh\ncase "$3" in acme-agent|tool) printf "ii 1.0-1";; zlib1g) printf "ii 1:1.3";;'
        " *) exit 1;; esac\n"
    )
    # Like the real one, it exits 0 with no output for a version it does not know.
    (fake / "apt-cache").write_text(
        f'#!/bin/sh\necho "$2" >> {tmp_path}/asked\n'
        '[ "$2" = acme-agent=1.0-2 ] && printf "Package: acme-agent\\nVersion: 1.0-2\\n"\n'
        "exit 0\n"
    )
    for tool in ("dpkg-query", "apt-cache"):
        (fake / tool).chmod(0o755)
    state = desired_state(
        Patch(advisory="patches.lock.yml", package="acme-agent", fixed="1.0-2"),
        Patch(advisory="patches.lock.yml", package="tool", fixed="1.0-9"),
        Patch(advisory="patches.lock.yml", package="zlib1g", fixed="1:1.3"),
        Patch(advisory="patches.lock.yml", package="absent", fixed="2.0"),
    )
    observed = parse_probe_output(_run_probe_lines(offer_lines(state), fake))
    assert observed.offered == {"acme-agent=1.0-2": True, "tool=1.0-9": False}
    assert (tmp_path / "asked").read_text().split() == ["acme-agent=1.0-2", "tool=1.0-9"]
    installed = {  # what the probe's package lines report
        name: ObservedPackage(name=name, version=version, status="install ok installed")
        for name, version in (("acme-agent", "1.0-1"), ("tool", "1.0-1"), ("zlib1g", "1:1.3"))
    }
    observed = observed.model_copy(update={"packages": installed})
    [missing] = unoffered_versions(state, observed)
    assert missing.startswith("tool 1.0-9 (patches.lock.yml, ")


def test_show_prints_the_approvals_per_baseline_and_release(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patches", "show", "--repo", str(repo)]) == 1
    assert "the repository has no patches.lock.yml" in capsys.readouterr().err
    lock = _lock({"bookworm": {"acme-agent": "1.0-2"}, "trixie": {}})
    (repo / "patches.lock.yml").write_text(dump_lock(lock))
    hosts = repo / "inventory" / "hosts.yml"
    hosts.write_text(
        hosts.read_text().replace(
            "ring: canary}", "ring: canary, vars: {debian_release: bookworm}}"
        )
    )
    assert main(["patches", "show", "--repo", str(repo)]) == 0
    assert capsys.readouterr().out == (
        "patching (bookworm):\n  acme-agent 1.0-2\npatching (trixie):\n  (nothing approved)\n"
    )


def test_a_removed_approval_is_printed_with_its_reason() -> None:
    from orchestrator.cli.patches import _render_changes
    from orchestrator.patching.lockdiff import LockChange

    where = {"baseline": "patching", "release": "bookworm", "package": "old", "version": "1.0"}
    text = _render_changes(
        (LockChange(kind="removed", reason="rejected by the baseline (old)", **where),), {}, True
    )
    assert (
        text.splitlines()[0]
        == "- removed   patching/bookworm: old 1.0: rejected by the baseline (old)"
    )
    bare = _render_changes((LockChange(kind="removed", **where),), {}, True)
    assert bare.splitlines()[0] == "- removed   patching/bookworm: old 1.0"


def test_a_pin_to_a_version_the_repositories_lack_is_found_by_the_probe(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text(
        '#!/bin/sh\ncase "$3" in acme-agent|tool) printf "ii 1.0-1";; zlib1g) printf "ii 1:1.3";;'
        " *) exit 1;; esac\n"
    )
    (fake / "apt-cache").write_text(
        f'#!/bin/sh\necho "$2" >> {tmp_path}/asked\n'
        '[ "$2" = acme-agent=1.0-2 ] && printf "Package: acme-agent\\nVersion: 1.0-2\\n"\n'
        "exit 0\n"
    )
    for tool in ("dpkg-query", "apt-cache"):
        (fake / tool).chmod(0o755)
    state = desired_state(
        Package(name="acme-agent", version="1.0-2"),
        Package(name="tool", version="1.0-3"),
        Package(name="zlib1g", version="1:1.3"),
        Package(name="absent", version="2.0"),
    )
    observed = parse_probe_output(_run_probe_lines(offer_lines(state), fake))
    assert (tmp_path / "asked").read_text().split() == [
        "acme-agent=1.0-2",
        "tool=1.0-3",
        "absent=2.0",
    ]
    assert [m.split(" (")[0] for m in unoffered_versions(state, observed)] == [
        "tool 1.0-3",
        "absent 2.0",
    ]
    # An apt repository written first refreshes the lists: the pins are judged by apt itself.
    assert unoffered_versions(state, observed, lists_refreshed=True) == ()
