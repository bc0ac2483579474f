"""Rollouts on Temporal, the parts without a server: sites in the inventory (on a host, through
a group, the default), the engine settings, where the CLI finds Temporal, the `worker`
command's flags, and that only the Temporal commands load temporalio."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.cli.rollouts_temporal import temporal_target
from orchestrator.inventory import load_inventory
from orchestrator.model.inventory import DEFAULT_SITE, TemporalSettings
from orchestrator.rollout.temporal.messages import site_queue, workflow_id
from orchestrator.rollout.temporal.service import TemporalTarget
from tests.unit.test_inventory_loader import problems, repo

SITES = """\
groups:
  east: {site: fra-1}
  web: {}
rollout:
  engine: temporal
  temporal: {address: "temporal.example.net:7233", namespace: prod}
hosts:
  a: {address: 10.0.0.1, site: ams-2, groups: [east]}
  b: {address: 10.0.0.2, groups: [web, east]}
  c: {address: 10.0.0.3, groups: [web]}
"""


def test_a_host_site_is_its_own_else_its_groups_else_the_default(tmp_path: Path) -> None:
    inventory = load_inventory(repo(tmp_path, {"inventory/hosts.yml": SITES}))
    sites = {name: inventory.host_site(host) for name, host in inventory.hosts.items()}
    assert sites == {"a": "ams-2", "b": "fra-1", "c": DEFAULT_SITE}
    assert inventory.rollout.engine == "temporal"
    assert inventory.rollout.temporal == TemporalSettings(
        address="temporal.example.net:7233", namespace="prod"
    )
    assert site_queue("fra-1") == "patchring-site-fra-1"
    assert workflow_id("0123abcd") == "rollout-0123abcd"


@pytest.mark.parametrize("bad", ["a b", "-oProxyCommand=x", "$(id)", "x;y", "a\\nb", ""])
def test_a_site_name_is_a_label_with_a_located_error(tmp_path: Path, bad: str) -> None:
    text = f"hosts:\n  a: {{address: 10.0.0.1, site: {json.dumps(bad)}}}\n"
    found = problems(repo(tmp_path, {"inventory/hosts.yml": text}))
    assert len(found) == 1
    assert found[0].startswith("inventory/hosts.yml:2:")
    assert "error" in found[0]


def test_rollout_settings_are_set_once_and_the_engine_is_checked(tmp_path: Path) -> None:
    found = problems(
        repo(
            tmp_path,
            {
                "inventory/a.yml": "rollout: {engine: temporal}\n",
                "inventory/b.yml": "rollout: {engine: embedded}\nhosts: {x: {address: 10.0.0.9}}\n",
            },
        )
    )
    assert found == [
        "inventory/b.yml:1:1: error: duplicate rollout settings "
        "(first defined at inventory/a.yml:1:1)"
    ]
    found = problems(repo(tmp_path / "2", {"inventory/a.yml": "rollout: {engine: nomad}\n"}))
    assert len(found) == 1 and found[0].startswith("inventory/a.yml:1:")


def _args(tmp_path: Path, **given: object) -> argparse.Namespace:
    defaults = {"repo": tmp_path, "inventory": "inventory", "engine": None}
    defaults |= {"temporal_address": None, "temporal_namespace": None}
    return argparse.Namespace(**{**defaults, **given})


def test_the_engine_comes_from_the_flag_else_the_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.delenv("TEMPORAL_NAMESPACE", raising=False)
    repo(tmp_path, {"inventory/hosts.yml": SITES})
    assert temporal_target(_args(tmp_path)) == TemporalTarget("temporal.example.net:7233", "prod")
    assert temporal_target(_args(tmp_path, engine="embedded")) is None
    monkeypatch.setenv("TEMPORAL_ADDRESS", "10.1.1.1:7233")
    assert temporal_target(_args(tmp_path)).address == "10.1.1.1:7233"
    flagged = temporal_target(_args(tmp_path, temporal_address="127.0.0.1:9", engine="temporal"))
    assert flagged == TemporalTarget("127.0.0.1:9", "default")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert temporal_target(_args(empty)) is None  # no inventory: the embedded default


def test_worker_needs_a_site_or_workflows_and_a_valid_site(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker"]) == 1
    assert "give --site NAME, --workflows, or both" in capsys.readouterr().err
    assert main(["worker", "--site", "a;b"]) == 1
    assert "patchring: error: --site: " in capsys.readouterr().err


def _loaded(*args: str) -> set[str]:
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['patchring', *{list(args)!r}]\n"
        "from orchestrator.cli.entry import run\n"
        "run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_only_temporal_commands_load_temporalio_and_a_worker_patches_nothing() -> None:
    for command in ("rollout", "status", "approve"):
        loaded = _loaded(command, "--help")
        assert not {name for name in loaded if name.startswith("temporalio")}, command
    worker = _loaded("worker", "--help")
    assert "gevent" not in {name.split(".")[0] for name in worker}
    assert not {name for name in worker if name.startswith("temporalio")}
