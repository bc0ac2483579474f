"""What a rollback removes: files only the rolled-back commit declared (pure)."""

from __future__ import annotations

from orchestrator.compiler.retire import RetiredFile, removal_command, retired_files
from orchestrator.model.policy import AptRepository, File, Package
from tests.unit.builders import AGENT_KEY, desired

LAB = AptRepository(name="lab", url="http://10.213.0.1:8080/", suite="lab", key=AGENT_KEY)
BROKEN = AptRepository(name="lab-broken", url="http://10.213.0.1:8080/", suite="broken", key="k")
CONF = File(path="/etc/acme/agent.conf", content="port = 7070\n")
EXTRA = File(path="/etc/acme/extra.conf", content="x\n")


def test_an_apt_repository_the_target_lacks_is_removed_with_its_key() -> None:
    rolled_back = desired(LAB, BROKEN, Package(name="acme-agent", version="1.0-3"))
    target = desired(LAB, Package(name="acme-agent", version="1.0-2"))
    assert retired_files(rolled_back, target) == (
        RetiredFile(
            path="/etc/apt/keyrings/lab-broken.asc",
            resource_id="apt_repository:lab-broken",
            policy="base",
            apt_source=True,
        ),
        RetiredFile(
            path="/etc/apt/sources.list.d/lab-broken.list",
            resource_id="apt_repository:lab-broken",
            policy="base",
            apt_source=True,
        ),
    )


def test_nothing_the_target_still_declares_is_removed() -> None:
    changed = AptRepository(name="lab", url="http://mirror.invalid/", suite="lab", key="k")
    assert retired_files(desired(changed, CONF), desired(LAB, CONF), created={CONF.path}) == ()
    moved = File(path="/etc/apt/sources.list.d/lab-broken.list", content="deb ...\n")
    assert [f.path for f in retired_files(desired(BROKEN), desired(moved))] == [
        "/etc/apt/keyrings/lab-broken.asc"  # the other path is now a declared file
    ]


def test_a_file_is_removed_only_when_the_rollout_created_it() -> None:
    rolled_back, target = desired(CONF, EXTRA), desired(CONF)
    assert retired_files(rolled_back, target) == ()  # it may have been there before
    found = retired_files(rolled_back, target, created={f"file:{EXTRA.path}"})
    assert [f.path for f in found] == [EXTRA.path]
    assert removal_command(found) == "rm -f -- /etc/acme/extra.conf"


def test_removal_command_refreshes_apt_after_removing_a_source() -> None:
    files = retired_files(desired(BROKEN), desired())
    assert removal_command(files) == (
        "rm -f -- /etc/apt/keyrings/lab-broken.asc /etc/apt/sources.list.d/lab-broken.list"
        " && apt-get update -qq"
    )
    assert removal_command(()) is None
