"""Saved plans without hosts: fingerprints, drift named in words, files read strictly, secrets
masked in the file, and the refusals `apply FILE` and `rollout --plan FILE` make."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.cli.console import Output
from orchestrator.cli.planfile import check_plan_source, read_saved_plan, refusals, write_saved_plan
from orchestrator.cli.project import Selection
from orchestrator.drift.changes import ResourceChange
from orchestrator.drift.observed import Observation, ObservedPackage, ObservedPath
from orchestrator.drift.saved import (
    desired_digest,
    input_differences,
    observed_differences,
    observed_digest,
)
from orchestrator.errors import UserInputError
from orchestrator.model.policy import Package, Service
from orchestrator.model.results import HostPlan
from orchestrator.model.savedplan import PlannedHost, PlanSource, SavedPlan
from tests.unit.builders import desired, resource

SEEN = Observation(
    packages={
        "nginx": ObservedPackage(name="nginx", version="1.2-1", status="install ok installed")
    },
    paths={"/etc/motd": ObservedPath(path="/etc/motd", kind="file", sha256="a" * 64, mode="644")},
)


def _plan(**host: object) -> SavedPlan:
    state = desired(Package(name="nginx", version="1.2-1"))
    planned = {
        "host": "web-01",
        "status": "in-sync",
        "desired_sha256": desired_digest(state),
        "observed_sha256": observed_digest(SEEN),
        "observed": SEEN,
        **host,
    }
    return SavedPlan(
        tool_version="0",
        created=datetime(2026, 1, 1, tzinfo=UTC),
        source=PlanSource(commit="c" * 40, dirty=False),
        inventory="inventory",
        inputs={"policies/web.yml": "1" * 64},
        hosts=(PlannedHost.model_validate(planned),),
    )


def test_desired_digest_ignores_where_values_came_from_not_what_they_are() -> None:
    state = desired(Package(name="nginx", version="1.2-1"))
    moved = state.model_copy(
        update={"resources": (resource(Package(name="nginx", version="1.2-1"), line=40),)}
    )
    assert desired_digest(moved) == desired_digest(state)
    pinned = desired(Package(name="nginx", version="1.2-2"))
    assert desired_digest(pinned) != desired_digest(state)


def test_drift_is_named_per_package_and_path() -> None:
    later = SEEN.model_copy(
        update={
            "packages": {
                "nginx": ObservedPackage(
                    name="nginx", version="1.1-9", status="install ok installed"
                )
            },
            "paths": {
                "/etc/motd": ObservedPath(
                    path="/etc/motd", kind="file", sha256="b" * 64, mode="600"
                )
            },
        }
    )
    assert observed_digest(later) != observed_digest(SEEN)
    assert observed_differences(SEEN, later) == [
        "package nginx: version 1.2-1 -> 1.1-9",
        f"path /etc/motd: sha256 {'a' * 12} -> {'b' * 12}, mode 644 -> 600",
    ]
    # File contents (the probe's, for diffs) never reach the plan and do not count as drift.
    with_content = SEEN.model_copy(
        update={
            "paths": {"/etc/motd": SEEN.paths["/etc/motd"].model_copy(update={"content": b"x"})}
        }
    )
    assert observed_digest(with_content) == observed_digest(SEEN)


def test_refusals_say_why_per_host() -> None:
    fleet = {"web-01": desired(Package(name="nginx", version="1.2-1"))}
    probe = HostPlan(host="web-01", status="in-sync", observed=SEEN)
    assert refusals(_plan(), fleet, {"web-01": probe}) == {}
    drifted = probe.model_copy(update={"observed": Observation()})
    assert refusals(_plan(), fleet, {"web-01": drifted}) == {
        "web-01": "drifted since the plan: package nginx: no longer seen; "
        "path /etc/motd: no longer seen"
    }
    other = {"web-01": desired(Service(name="nginx"))}
    assert "desired state differs" in refusals(_plan(), other, {"web-01": probe})["web-01"]
    unread = _plan(observed=None, observed_sha256=None, status="unreachable", error="timed out")
    assert refusals(unread, fleet, {"web-01": probe}) == {
        "web-01": "it was not read when the plan was made (timed out)"
    }
    stranger = {"db-01": desired(Service(name="nginx"), host="db-01")}
    assert refusals(_plan(), stranger, {}) == {"db-01": "not in the plan"}


def test_another_commit_or_other_inputs_are_refused(tmp_path: Path) -> None:
    plan, path = _plan(), tmp_path / "p.json"
    check_plan_source(path, plan, "c" * 40, {"policies/web.yml": "1" * 64})
    with pytest.raises(
        UserInputError,
        match=r"made at commit cccccccccccc, but the policies are "
        r"at dddddddddddd; nothing was changed",
    ):
        check_plan_source(path, plan, "d" * 40, plan.inputs)
    with pytest.raises(UserInputError, match=r"policies/web.yml: changed since the plan"):
        check_plan_source(path, plan, "c" * 40, {"policies/web.yml": "2" * 64})
    assert input_differences({"a": "1"}, {"b": "1"}) == [
        "a: no longer used",
        "b: new since the plan",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"schema": "patchring.saved-plan/v1",\n  "hosts": [,]}',
            r"p\.json:2:13: error: not a "
            r"saved plan: Expecting value",
        ),
        ('{"schema": "patchring.plan/v1"}', r"not a saved plan \(schema 'patchring\.plan/v1'"),
        ('["import os"]', r"not a saved plan \(schema None"),
        (
            '{"schema": "patchring.saved-plan/v1", "tool_version": "0"}',
            r"malformed saved plan at created: Field required \(and 4 more\)",
        ),
    ],
)
def test_a_malformed_plan_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(UserInputError, match=message):
        read_saved_plan(path)


def test_a_plan_file_round_trips_and_has_its_secrets_masked(tmp_path: Path) -> None:
    from orchestrator.policy.project import Project

    state = desired(Package(name="nginx", version="1.2-1"))
    leak = ResourceChange(
        resource_id="file:/etc/app.conf",
        policy="app",
        actions=("update",),
        summary="content changes",
        diff="-token = s3cr3t-value\n+token = s3cr3t-value2\n",
    )
    plans = {"web-01": HostPlan(host="web-01", status="drifted", changes=(leak,), observed=SEEN)}
    project = Project(policies=(), inventory=_empty_inventory(), desired={"web-01": state})
    output = Output()
    output.protect({"s3cr3t-value"})
    path = tmp_path / "plan.json"
    chosen = Selection(project=project, fleet={"web-01": state}, rings=())
    write_saved_plan(path, tmp_path, "inventory", chosen, plans, output)
    text = path.read_text()
    assert "s3cr3t" not in text
    loaded = read_saved_plan(path)
    assert loaded.hosts[0].desired_sha256 == desired_digest(state)
    assert loaded.hosts[0].observed_sha256 == observed_digest(SEEN)
    assert json.loads(text)["schema"] == "patchring.saved-plan/v1"


def _empty_inventory() -> object:
    from orchestrator.model.inventory import Inventory

    return Inventory()
