"""Faults during an apply: a host frozen, cut off or left by a killed `patchring` while a file
with `restart:` changes. The restart due is recorded on the host before the file changes, so
the next `plan` shows it pending, the next `apply` carries it out, and `verify` fails with
evidence whenever a service runs an older file than the one on disk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.lab import faults
from orchestrator.rollout.conductor import inventory_key
from orchestrator.store.ledger import open_ledger
from orchestrator.verify.probes import service_restarted
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 90}
CONF = "/etc/acme/agent.conf"
UNIT = "acme-agent.service"
RESTART_ID = f"restart:{UNIT}"
RESTARTED_CHECK = f"acme-agent/file:{CONF}/restarted:{UNIT}"
SLOW_DONE = "/var/tmp/patchring-slow-step-done"
NOT_ANSWERING = re.compile(
    r'operation "server\.shell command slow-step" stopped after \d+ s: host not answering '
    r"\(no SSH reply within 9 s\)"
)


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)
    converged = patchring(repo, "apply")
    assert converged.code == 0, converged.stdout + converged.stderr
    return repo


def _change_config_with_a_slow_step(repo: Path, hosts: list[str]) -> None:
    """Set the agent's log level to debug in its template (a `restart:` file changes on every
    host) and give `hosts` a slow command
    that runs after the file is written and before the restart: a window to break things in."""
    template = repo / "templates" / "agent.conf.j2"
    template.write_text(template.read_text().replace("{{ agent_log_level }}", "debug"))
    write_yaml(
        repo / "policies" / "slow-step.yml",
        {
            "name": "slow-step",
            "select": {"hosts": hosts},
            "commands": [
                {"name": "slow-step", "run": f"sleep 25 && touch {SLOW_DONE}", "creates": SLOW_DONE}
            ],
        },
    )


def _start_apply(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "apply", "--json", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_for_new_file(lab: Lab, name: str, apply: subprocess.Popen[str]) -> None:
    """Poll the host (without ssh) until the apply has written the new file and gone on to the
    slow step: the file is in place, its restart not yet run."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        written = "log_level = debug" in lab.exec(name, "cat", CONF)
        slow = faults.host_exec(
            LAB_NAME, name, ["pgrep", "-f", "sleep 25"], state_dir=lab.status.state_dir
        )
        if written and slow.returncode == 0:
            return
        assert apply.poll() is None, apply.communicate()
        time.sleep(0.2)
    raise AssertionError(f"{CONF} on {name} never got the new content")


def _agent_runs_new_file(lab: Lab, name: str) -> None:
    passed, actual = service_restarted(host(lab.address(name), lab.ssh_config), UNIT, CONF)
    assert passed, actual
    log = lab.exec(name, "journalctl", "-u", UNIT, "-o", "cat", "--no-pager")
    last_start = log.rsplit("starting", 1)[-1]  # the agent prints its config as it starts
    assert "log_level = debug" in last_start, log[-600:]


def _pending_then_carried_out(repo: Path, lab: Lab, name: str) -> None:
    """After the fault: `plan` shows the restart pending, `verify` sees the lost restart, and
    one `apply` carries it out, so the service runs the new file."""
    assert "log_level = debug" in lab.exec(name, "cat", CONF)
    marker = lab.exec(name, "cat", f"/var/lib/patchring/pending-restarts/{UNIT}")
    assert f"{CONF} changed" in marker

    plan = patchring(repo, "plan", "--json", "--host", name)
    (entry,) = plan.json()["hosts"]
    changes = {c["resource_id"]: c for c in entry["changes"]}
    assert changes[RESTART_ID]["actions"] == ["restart"]
    assert "pending since an earlier apply" in changes[RESTART_ID]["summary"]
    assert f"file:{CONF}" not in changes  # the file itself is in place

    verified = patchring(repo, "verify", "--json", "--host", name)
    assert verified.code == 3, verified.stdout + verified.stderr
    checks = {r["check_id"]: r for h in verified.json()["verify"] for r in h["results"]}
    assert checks[RESTARTED_CHECK]["status"] == "failed"
    assert "a restart was lost" in checks[RESTARTED_CHECK]["actual"]

    applied = patchring(repo, "apply", "--json", "--host", name)
    assert applied.code == 0, applied.stdout + applied.stderr
    (result,) = applied.json()["hosts"]
    outcomes = {o["resource_id"]: o["status"] for o in result["outcomes"]}
    assert outcomes[RESTART_ID] == "changed"
    _agent_runs_new_file(lab, name)
    assert lab.exec(name, "ls", "/var/lib/patchring/pending-restarts").strip() == ""
    assert patchring(repo, "verify", "--host", name).code == 0
    assert patchring(repo, "plan", "--detailed-exitcode", "--host", name).code == 0


def _fault_mid_apply(
    repo: Path, lab: Lab, name: str, fault: Callable[[], None], mend: Callable[[], None]
) -> dict:
    _change_config_with_a_slow_step(repo, [name])
    apply = _start_apply(repo, "--host", name)
    try:
        _wait_for_new_file(lab, name, apply)
        fault()
        out, err = apply.communicate(timeout=180)
    finally:
        mend()
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == 3, out + err
    (result,) = json.loads(out)["hosts"]
    return result


def test_a_host_frozen_mid_apply_gets_its_restart_on_the_next_apply(repo: Path, lab: Lab) -> None:
    name = lab.hosts[1]
    state = lab.status.state_dir
    result = _fault_mid_apply(
        repo,
        lab,
        name,
        lambda: faults.freeze_host(LAB_NAME, name, state_dir=state),
        lambda: faults.thaw_host(LAB_NAME, name, state_dir=state),
    )
    assert result["status"] == "failed"
    assert NOT_ANSWERING.search(result["error"]), result["error"]
    outcomes = {o["resource_id"]: o for o in result["outcomes"]}
    assert outcomes[f"file:{CONF}"]["status"] == "changed"  # written, not "skipped"
    assert outcomes[RESTART_ID]["status"] == "skipped"
    assert "the restart stays pending on the host" in outcomes[RESTART_ID]["error"]
    _pending_then_carried_out(repo, lab, name)


def test_a_host_cut_off_mid_apply_gets_its_restart_on_the_next_apply(repo: Path, lab: Lab) -> None:
    name = lab.hosts[2]
    state = lab.status.state_dir
    result = _fault_mid_apply(
        repo,
        lab,
        name,
        lambda: faults.partition_host(LAB_NAME, name, state_dir=state),
        lambda: faults.heal_host(LAB_NAME, name, state_dir=state),
    )
    assert result["status"] == "failed"
    assert NOT_ANSWERING.search(result["error"]), result["error"]
    _pending_then_carried_out(repo, lab, name)


def test_a_killed_apply_leaves_its_restart_pending_and_the_next_apply_runs_it(
    repo: Path, lab: Lab
) -> None:
    name = lab.hosts[3]
    _change_config_with_a_slow_step(repo, [name])
    apply = _start_apply(repo, "--host", name)
    try:
        _wait_for_new_file(lab, name, apply)
    finally:
        apply.kill()  # SIGKILL: no handler runs, nothing is recorded by the dying process
        apply.communicate(timeout=30)
    assert apply.returncode == -9
    _pending_then_carried_out(repo, lab, name)


def test_a_file_changed_behind_the_tools_back_fails_the_restart_check(repo: Path, lab: Lab) -> None:
    name = lab.hosts[4]
    assert patchring(repo, "verify", "--host", name).code == 0
    lab.exec(name, "touch", CONF)  # same content, newer than the running service
    verified = patchring(repo, "verify", "--json", "--host", name)
    assert verified.code == 3
    (entry,) = verified.json()["verify"]
    failed = {r["check_id"]: r for r in entry["results"] if r["status"] != "passed"}
    assert list(failed) == [RESTARTED_CHECK]
    check = failed[RESTARTED_CHECK]
    assert re.fullmatch(
        rf"{UNIT} started [\d:. -]+ UTC, before {CONF} changed [\d:. -]+ UTC: a restart was lost",
        check["actual"],
    ), check["actual"]
    commands = [e["command"] for e in check["evidence"]]
    assert any("ActiveEnterTimestamp" in c for c in commands), commands
    assert any(c.startswith("date -u -r") for c in commands), commands
    lab.exec(name, "systemctl", "restart", UNIT)
    assert patchring(repo, "verify", "--host", name).code == 0


def test_a_host_frozen_in_a_batch_holds_up_no_other_and_says_what_hung(
    repo: Path, lab: Lab
) -> None:
    frozen = lab.hosts[5]
    state = lab.status.state_dir
    _change_config_with_a_slow_step(repo, [frozen])
    apply = _start_apply(repo)
    try:
        _wait_for_new_file(lab, frozen, apply)
        faults.freeze_host(LAB_NAME, frozen, state_dir=state)
        out, err = apply.communicate(timeout=240)
    finally:
        faults.thaw_host(LAB_NAME, frozen, state_dir=state)
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == 3, out + err
    results = {h["host"]: h for h in json.loads(out)["hosts"]}
    assert {results[n]["status"] for n in lab.hosts if n != frozen} == {"changed"}
    for name in lab.hosts:
        if name != frozen:
            outcomes = {o["resource_id"]: o["status"] for o in results[name]["outcomes"]}
            assert outcomes == {f"file:{CONF}": "changed", RESTART_ID: "changed"}
    assert results[frozen]["status"] == "failed"
    assert NOT_ANSWERING.search(results[frozen]["error"]), results[frozen]["error"]
    assert patchring(repo, "apply").code == 0  # the frozen host catches up, restart included
    _agent_runs_new_file(lab, frozen)


def test_a_rollout_killed_while_a_remote_command_runs_records_that_host_as_changed(
    repo: Path, lab: Lab
) -> None:
    """The remote command outlives the killed `patchring rollout`, so the resumed attempt finds
    the host converged: the attempt recorded before it started makes it count as changed."""
    canary = lab.ring("canary")[0]
    done = "/var/tmp/patchring-interrupted-done"
    write_yaml(
        repo / "policies" / "slow-step.yml",
        {
            "name": "slow-step",
            "select": {"hosts": [canary]},
            "commands": [{"name": "slow", "run": f"sleep 8 && touch {done}", "creates": done}],
        },
    )
    commit(repo, "a slow command on the canary")
    rollout = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "rollout", "--to", "canary"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_until(lambda: _runs(lab, canary, "sleep 8"), rollout)
    finally:
        rollout.kill()
        rollout.wait(timeout=30)
    _wait_until(lambda: _runs(lab, canary, f"test -e {done}"), None)  # it finished on its own

    resumed = patchring(repo, "rollout", "--to", "canary")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    with open_ledger(repo / ".patchring" / "ledger.db") as book:
        (latest,) = book.recent_rollouts(inventory_key(repo, "inventory"))[:1]
        applies = [
            (o.status, o.detail)
            for o in book.host_outcomes(latest.id)
            if o.phase == "apply" and o.host == canary
        ]
    assert [status for status, _ in applies] == ["started", "started", "changed"]
    assert "changed by an earlier attempt that was interrupted" in applies[-1][1]


def _runs(lab: Lab, name: str, command: str) -> bool:
    argv = ["pgrep", "-f", command] if command.startswith("sleep") else ["sh", "-c", command]
    return faults.host_exec(LAB_NAME, name, argv, state_dir=lab.status.state_dir).returncode == 0


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[str] | None) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, "the host never got there"
        assert process is None or process.poll() is None, "the process ended first"
        time.sleep(0.2)
