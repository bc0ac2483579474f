"""Compiler golden cases: desired state in, operation specs out, pinned as JSON files.

Set PATCHRING_UPDATE_GOLDEN=1 to rewrite the files after an intended change; review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.compiler import compile_host
from orchestrator.model.policy import File, Package, Service
from tests.unit.builders import desired, reference_state

GOLDEN = Path(__file__).parent / "golden"


def _case_reference():
    return compile_host(reference_state())


def _case_only_drifted():
    state = reference_state()
    return compile_host(state, only={"package:acme-agent", "file:/etc/acme/agent.conf"})


def _case_two_files_restart_once():
    state = desired(
        File(path="/etc/a.conf", content="a\n", restart=("web",)),
        File(path="/etc/b.conf", content="b\n", restart=("web", "cache.service")),
        Service(name="web"),
    )
    return compile_host(state)


def _case_pin_wins_over_patch():
    from orchestrator.model.policy import Patch

    state = desired(
        Package(name="acme-agent", version="1.0-3"),
        Patch(advisory="DSA-1", package="acme-agent", fixed="1.0-2"),
    )
    return compile_host(state)


def _case_verbatim_file_and_deb822_key_file():
    from orchestrator.model.policy import AptRepository

    state = desired(
        AptRepository(
            name="lab",
            url="http://10.213.0.1:8080/",
            suite="lab",
            key_file="keys/lab.gpg",
            keyring="/usr/share/keyrings/lab.gpg",
            format="sources",
        ),
        File(path="/etc/acme/blob.bin", source="files/blob.bin", mode="0600"),
    )
    data = {"apt_repository:lab": b"\x99\x00\x01k", "file:/etc/acme/blob.bin": b"\x00\xffbin"}
    resources = tuple(r.model_copy(update={"data": data[r.id]}) for r in state.resources)
    return compile_host(state.model_copy(update={"resources": resources}))


def _case_apt_key_url():
    from orchestrator.model.policy import AptRepository

    state = desired(
        AptRepository(
            name="lab",
            url="http://10.213.0.1:8080/",
            suite="lab",
            key_url="http://10.213.0.1:8080/lab-archive-key.asc",
            fingerprint="93E0 2DAA 2674 B497 C4A7  C6F0 DF1B 56B5 72F4 71D4",
        ),
        Package(name="acme-agent"),
    )
    return compile_host(state)


def _case_after_file_before_one_package():
    """policy-rc.d must exist before nginx installs: the install batch splits around it."""
    from orchestrator.model.policy import Command

    state = desired(
        Package(name="curl"),
        Package(name="nginx", after=("file:/usr/sbin/policy-rc.d",)),
        File(path="/usr/sbin/policy-rc.d", content="#!/bin/sh\nexit 101\n", mode="0755"),
        File(path="/etc/nginx/conf.d/a.conf", content="a\n", restart=("nginx",)),
        Service(name="nginx"),
        Command(name="warm", run="curl -s localhost", unless="false", after=("service:nginx",)),
    )
    return compile_host(state)


def _case_accounts():
    from orchestrator.model.policy import Group, Sysctl, User

    hash_ = "$y$j9T$PaQ0vUGx8wWhBrNdSzlxs/$JdkOZhuAJTKe9L/ImBPJd1Bgl1VBhwrq5G6UBWS.2F."
    deploy = User.model_validate(
        {"name": "deploy", "uid": 2345, "group": "ops", "groups": [], "groups_mode": "exact",
         "password": hash_},
        context={"rendered": True},
    )  # fmt: skip
    state = desired(
        Sysctl(key="net.core.somaxconn", value="1024", file="/etc/sysctl.d/60-net.conf"),
        deploy,
        User(name="svc", system=True, groups=("adm",)),
        Group(name="ops", gid=2345),
    )
    return compile_host(state)


def _case_after_package_before_repository():
    """An apt source whose key needs a package first: apt update runs again after it."""
    from orchestrator.model.policy import AptRepository

    state = desired(
        AptRepository(
            name="extra",
            url="http://10.0.0.9/debian",
            suite="bookworm",
            key="KEY",
            after=("package:gnupg",),
        ),
        Package(name="gnupg"),
        Package(name="extra-tool", after=("apt_repository:extra",)),
    )
    return compile_host(state)


CASES = {
    "verbatim_file_and_deb822_key_file": _case_verbatim_file_and_deb822_key_file,
    "apt_key_url": _case_apt_key_url,
    "accounts": _case_accounts,
    "after_file_before_one_package": _case_after_file_before_one_package,
    "after_package_before_repository": _case_after_package_before_repository,
    "reference": _case_reference,
    "only_drifted": _case_only_drifted,
    "two_files_restart_once": _case_two_files_restart_once,
    "pin_wins_over_patch": _case_pin_wins_over_patch,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiler_golden(case: str) -> None:
    got = [op.model_dump(mode="json") for op in CASES[case]()]
    path = GOLDEN / f"{case}.json"
    if os.environ.get("PATCHRING_UPDATE_GOLDEN") or not path.exists():
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(path.read_text())


def test_no_drift_compiles_to_nothing() -> None:
    assert compile_host(reference_state(), only=set()) == ()


def test_packages_that_change_together_install_in_one_call() -> None:
    ops = compile_host(desired(Package(name="a", version="1.0-1"), Package(name="b")))
    installs = [op for op in ops if op.operation == "apt.packages"]
    assert len(installs) == 1
    assert installs[0].args["packages"] == ["a=1.0-1", "b"]
    assert installs[0].resource_ids == ("package:a", "package:b")
    assert ops[0].operation == "apt.update"


def test_a_due_restart_is_recorded_on_the_host_before_anything_changes() -> None:
    ops = compile_host(reference_state(), only={"package:acme-agent", "file:/etc/acme/agent.conf"})
    record, *rest, restart = ops
    marker = "/var/lib/patchring/pending-restarts/acme-agent.service"
    assert record.description == "record pending restarts: acme-agent.service"
    assert record.resource_ids == restart.resource_ids == ("restart:acme-agent.service",)
    assert marker in record.args["commands"][0]
    assert restart.args["commands"] == [f"systemctl restart acme-agent.service && rm -f {marker}"]
    assert [op.operation for op in rest] == ["apt.update", "apt.packages", "files.put"]


def test_a_pending_restart_alone_compiles_to_the_restart_alone() -> None:
    ops = compile_host(reference_state(), only={"restart:acme-agent.service"})
    assert [op.description for op in ops] == [
        "record pending restarts: acme-agent.service",
        "restart acme-agent.service (pending)",
    ]
