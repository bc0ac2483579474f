"""Bounded fan-out: `in_windows` covers every host once, in order, never more than N at a time;
and the engine and the verifier, over real loopback sockets, never have more than `parallel`
connections open (a listener counts them), while still reaching hosts in parallel."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.cli.project import parallel_for
from orchestrator.errors import ValidationError
from orchestrator.fanout import in_windows
from orchestrator.inventory import load_inventory
from orchestrator.model.inventory import DEFAULT_PARALLEL
from orchestrator.policy import load_project
from orchestrator.policy.projectsource import WorktreeSource

HOSTS = "hosts:\n  web-01: {address: 10.0.0.1}\n"


def test_windows_cover_every_host_once_in_order_at_most_n_at_a_time() -> None:
    fleet = {f"h{i}": i for i in range(7)}
    seen: list[list[str]] = []

    def work(window: dict[str, int]) -> dict[str, int]:
        seen.append(list(window))
        return {name: value * 10 for name, value in reversed(window.items())}

    assert in_windows(fleet, 3, work) == {f"h{i}": i * 10 for i in range(7)}
    assert seen == [["h0", "h1", "h2"], ["h3", "h4", "h5"], ["h6"]]
    assert list(in_windows(fleet, 3, work)) == list(fleet)  # the fleet's order, not the work's


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="parallel must be at least 1, not 0"):
        in_windows({"a": 1}, 0, dict)


def _inventory(tmp_path: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        (tmp_path / "inventory").mkdir(exist_ok=True)
        (tmp_path / "inventory" / name).write_text(text)
    return WorktreeSource(tmp_path)


def test_the_inventory_sets_the_cap_once_and_the_flag_overrides_it(tmp_path: Path) -> None:
    source = _inventory(tmp_path, {"a.yml": "settings: {parallel: 7}\n" + HOSTS})
    assert load_inventory(source).settings.parallel == 7
    (tmp_path / "policies").mkdir()
    project = load_project(source, "inventory")
    assert parallel_for(argparse.Namespace(parallel=None), project) == 7
    assert parallel_for(argparse.Namespace(parallel=2), project) == 2
    (tmp_path / "inventory" / "a.yml").write_text(HOSTS)
    assert load_inventory(source).settings.parallel == DEFAULT_PARALLEL == 50


def test_a_bad_cap_in_the_inventory_is_a_located_error(tmp_path: Path) -> None:
    source = _inventory(
        tmp_path,
        {"a.yml": "settings:\n  parallel: 0\n" + HOSTS, "b.yml": "settings: {parallel: 3}\n"},
    )
    with pytest.raises(ValidationError) as caught:
        load_inventory(source)
    assert [str(d) for d in caught.value.diagnostics] == [
        "inventory/a.yml:2:13: error: must be greater than or equal to 1, got 0",
    ]
    (tmp_path / "inventory" / "a.yml").write_text("settings: {parallel: 4}\n" + HOSTS)
    with pytest.raises(ValidationError) as caught:
        load_inventory(source)
    assert [str(d) for d in caught.value.diagnostics] == [
        "inventory/b.yml:1:1: error: duplicate settings section "
        "(first defined at inventory/a.yml:1:1)",
    ]


@pytest.mark.parametrize("verb", ["plan", "apply", "verify", "rollout"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_parallel_flag_is_exit_1_before_anything_runs(
    verb: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([verb, "--parallel", value]) == 1
    assert capsys.readouterr().err == (
        f"patchring: error: argument --parallel: must be a whole number of at least 1, "
        f"not '{value}' (see 'patchring {verb} --help')\n"
    )


# A listener on loopback that accepts connections, keeps each open a moment without saying
# anything, then closes it: each host fails quickly ("unreachable"), and the listener knows how
# many connections were open at once. Run in a process of its own, patched by gevent as the
# `patchring` command is (the unit tests' process is not).
COUNTING = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, sys, gevent
    from gevent.server import StreamServer
    from orchestrator.model.desired import DesiredState, HostTarget

    open_now = peak = 0
    def hold(sock, address):
        global open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        gevent.sleep(0.3)
        open_now -= 1
        sock.close()

    server = StreamServer(("127.0.0.1", 0), hold)
    server.start()
    fleet = {
        f"h{i}": DesiredState(
            host=HostTarget(name=f"h{i}", address="127.0.0.1", port=server.server_port,
                            connect_timeout=2),
            resources=(),
        )
        for i in range(7)
    }
    kind, parallel = sys.argv[1], int(sys.argv[2])
    if kind == "plan":
        from orchestrator.engine import plan_hosts
        statuses = [p.status for p in plan_hosts(fleet, parallel=parallel).values()]
    else:
        from orchestrator.verify import verify_hosts
        statuses = [v.status for v in verify_hosts(fleet, parallel=parallel).values()]
    print(json.dumps({"peak": peak, "statuses": statuses}))
    """
)


@pytest.mark.parametrize("kind", ["plan", "verify"])
def test_at_most_parallel_connections_are_open_at_once(kind: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", COUNTING, kind, "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["statuses"] == ["unreachable"] * 7
    assert found["peak"] == 3  # never more, and a window's hosts do go in parallel
