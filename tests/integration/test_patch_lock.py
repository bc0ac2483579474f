"""Patch baselines and the lock on real hosts: minimum age counted from the first-seen date
with a test clock (kept across re-locks), a rejected version never installed, a locked version
the repositories do not offer failing `plan` per host before anything changes, and a committed
lock rolled out over three rings installing exactly the locked version on every host although
a newer version appeared in the hosts' repositories between canary and the later rings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from orchestrator.drift.expected import apt_repository_files
from orchestrator.lab import faults
from orchestrator.model.policy import AptRepository
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

T0 = "2026-12-01T00:00:00Z"
T0_PLUS_8_DAYS = "2026-12-09T00:00:00Z"
LOCK = "patches.lock.yml"
BROKEN_SUITE = "deb [signed-by=/etc/apt/keyrings/patchring-lab.asc] {url} broken main\n"


def _prepare_host(lab: Lab, name: str) -> None:
    """The lab repository as the `lab-repo` policy writes it, and acme-agent 1.0-1 installed."""
    key = (lab.status.state_dir / "lab-archive-key.asc").read_text()
    repo = AptRepository(name="patchring-lab", url=lab.status.apt_url, suite="lab", key=key)
    keyring, sources = apt_repository_files(repo)
    line = (sources.content or b"").decode()
    script = (
        f"set -e; mkdir -p /etc/apt/keyrings; cat > {keyring.path}; "
        f"printf '%s' '{line}' > {sources.path}; "
        "apt-get update -q >/dev/null; apt-get install -y -q acme-agent=1.0-1 >/dev/null"
    )
    proc = faults.host_exec(
        LAB_NAME, name, ["sh", "-c", script], state_dir=lab.status.state_dir, input_text=key
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda name: _prepare_host(lab, name), lab.hosts))
    repo = make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )
    for name in ("acme-agent.yml", "hardening.yml"):  # they pin the agent themselves
        (repo / "policies" / name).unlink()
    _baseline(repo, {"classification": "all", "min_age_days": 7})
    commit(repo, "a patch baseline instead of hand-pinned versions")
    return repo


def _baseline(repo: Path, baseline: dict[str, object]) -> None:
    write_yaml(
        repo / "policies" / "patching.yml",
        {"name": "patching", "select": {"all": True}, "patch_baseline": baseline},
    )


def _versions(lab: Lab, names: list[str]) -> dict[str, str]:
    return {n: host(lab.address(n), lab.ssh_config).package("acme-agent").version for n in names}


def test_a_committed_lock_rolls_out_exactly_the_locked_version(repo: Path, lab: Lab) -> None:
    # Minimum age: first seen now, so too new; held with the moment it becomes approvable.
    held = patchring(repo, "patches", "lock", "--refresh", "--now", T0)
    assert held.code == 0, held.stderr
    assert (
        "~ held back patching/bookworm: acme-agent 1.0-2 until 2026-12-08T00:00:00Z: pending "
        "approval until 2026-12-08: younger than 7 days (first seen 2026-12-01)"
    ) in held.stdout
    assert (
        yaml.safe_load((repo / LOCK).read_text())["baselines"]["patching"]["bookworm"].get(
            "approved", {}
        )
        == {}
    )

    # A rejection wins over age: applying that lock installs nothing on any host.
    _baseline(
        repo, {"classification": "all", "min_age_days": 7, "rejected": [{"package": "acme-agent"}]}
    )
    rejected = patchring(repo, "patches", "lock", "--now", T0_PLUS_8_DAYS)
    assert rejected.code == 0, rejected.stderr
    assert "acme-agent 1.0-2" in rejected.stdout and "rejected by the baseline" in rejected.stdout
    applied = patchring(repo, "apply")
    assert applied.code == 0, applied.stderr
    assert set(_versions(lab, lab.hosts).values()) == {"1.0-1"}

    # Past the age, the version is approved; its first-seen date is the one of the first lock.
    _baseline(repo, {"classification": "all", "min_age_days": 7})
    approved = patchring(repo, "patches", "lock", "--json", "--now", T0_PLUS_8_DAYS)
    assert approved.code == 0, approved.stderr
    [change] = [c for c in approved.json()["changes"] if c["kind"] == "approved"]
    assert (change["package"], change["version"], change["release"]) == (
        "acme-agent",
        "1.0-2",
        "bookworm",
    )
    lock = yaml.safe_load((repo / LOCK).read_text())
    entry = lock["baselines"]["patching"]["bookworm"]["approved"]["acme-agent"]
    assert (entry["version"], entry["first_seen"]) == ("1.0-2", T0)
    again = patchring(repo, "patches", "lock", "--now", T0_PLUS_8_DAYS)
    assert again.code == 0 and "patches.lock.yml unchanged: 0 changes" in again.stdout

    # A locked version the repositories do not offer: plan fails each host, nothing changes.
    good = (repo / LOCK).read_text()
    (repo / LOCK).write_text(good.replace("version: 1.0-2", "version: 1.0-9"))
    plan = patchring(repo, "plan", "--host", lab.hosts[0], "--host", lab.hosts[-1])
    assert plan.code == 3, plan.stderr
    # The same error on both hosts is listed once, with both hosts.
    assert plan.stdout.count("not offered by this host's apt repositories") == 1, plan.stdout
    assert f"  ! {lab.hosts[0]}, {lab.hosts[-1]}: not offered by" in plan.stdout, plan.stdout
    assert "acme-agent 1.0-9 (patches.lock.yml, patches.lock.yml:" in plan.stdout
    assert set(_versions(lab, [lab.hosts[0], lab.hosts[-1]]).values()) == {"1.0-1"}
    (repo / LOCK).write_text(good)
    commit(repo, "lock acme-agent 1.0-2")

    # Canary first; then the mirror moves on (1.0-3 appears) before pilot and broad.
    canary = patchring(repo, "rollout", "--to", "canary", "--json")
    assert canary.code == 0, canary.stderr
    later = lab.ring("pilot") + lab.ring("broad")
    line = BROKEN_SUITE.format(url=lab.status.apt_url)
    for name in later:
        lab.exec(name, "sh", "-c", f"printf '%s' '{line}' > /etc/apt/sources.list.d/newer.list")
        lab.exec(name, "apt-get", "update", "-q")
        policy = lab.exec(name, "apt-cache", "policy", "acme-agent")
        assert "Candidate: 1.0-3" in policy
    rest = patchring(repo, "rollout", "--json")
    assert rest.code == 0, rest.stderr + rest.stdout
    assert set(_versions(lab, lab.hosts).values()) == {"1.0-2"}
    # verify checked the locked version on every host (the whole rollout's record).
    locked_checks = {
        verified["host"]: check
        for verified in rest.json()["verify"]
        for check in verified["results"]
        if check["check_id"] == "patching/patch:patches.lock.yml/acme-agent/fixed"
    }
    assert set(locked_checks) == set(lab.hosts)
    assert {check["status"] for check in locked_checks.values()} == {"passed"}
