"""Inventory loading: merging files, names defined twice, rings, ssh paths, host selection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.errors import UnknownHostError, ValidationError
from orchestrator.inventory import collect_inventory, load_inventory, select_hosts
from orchestrator.model.desired import VarValue
from orchestrator.model.inventory import Inventory, InventoryHost
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.source import SourceLocation

REPO = Path(__file__).resolve().parents[2]

LAB = """\
ssh: {user: root, identity_file: /var/lib/patchring/labs/lab/id_ed25519, known_hosts: /var/lib/patchring/labs/lab/known_hosts}
vars: {lab_apt_url: "http://10.213.0.1:8080/", lab_apt_key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\\n..."}
hosts:
  lab-01: {address: 10.213.0.11, ring: canary, groups: [lab, web]}
  lab-02: {address: 10.213.0.12, ring: pilot, groups: [lab, db]}
  lab-03: {address: 10.213.0.13, ring: broad, groups: [lab]}
"""  # noqa: E501  (the exact shape `patchring lab up` writes)


def repo(tmp_path: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def problems(source: WorktreeSource, inventory: str = "inventory") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_inventory(source, inventory)
    return [str(d) for d in caught.value.diagnostics]


@pytest.fixture
def fleet(tmp_path: Path) -> Inventory:
    (tmp_path / "inventory").mkdir()
    shutil.copy(REPO / "inventory" / "fleet.yml", tmp_path / "inventory" / "fleet.yml")
    (tmp_path / "inventory" / "lab.yml").write_text(LAB, encoding="utf-8")
    return load_inventory(WorktreeSource(tmp_path))


def test_example_fleet_and_lab_inventories_merge(fleet: Inventory) -> None:
    assert fleet.files == ("inventory/fleet.yml", "inventory/lab.yml")
    assert [ring.name for ring in fleet.rings] == ["canary", "pilot", "broad"]
    assert all(ring.description for ring in fleet.rings)
    assert list(fleet.groups) == ["web", "db", "bastion"]
    assert list(fleet.hosts) == ["lab-01", "lab-02", "lab-03"]
    assert fleet.ssh.identity_file == "/var/lib/patchring/labs/lab/id_ed25519"
    assert fleet.ssh.known_hosts == "/var/lib/patchring/labs/lab/known_hosts"
    assert fleet.ssh_location == SourceLocation("inventory/lab.yml", 1, 1)
    assert fleet.vars["agent_port"].value == 7070
    assert fleet.vars["lab_apt_key"].value == "-----BEGIN PGP PUBLIC KEY BLOCK-----\n..."
    assert fleet.vars["lab_apt_url"] == VarValue(
        value="http://10.213.0.1:8080/", location=SourceLocation("inventory/lab.yml", 2, 21)
    )
    host = fleet.hosts["lab-01"]
    assert (host.address, host.ring, host.groups) == ("10.213.0.11", "canary", ("lab", "web"))
    assert host.location == SourceLocation("inventory/lab.yml", 4, 3)
    assert fleet.group_names() == ("web", "db", "bastion", "lab")


def test_select_hosts_in_inventory_order(fleet: Inventory) -> None:
    assert select_hosts(fleet) == ("lab-01", "lab-02", "lab-03")
    assert select_hosts(fleet, ring="pilot") == ("lab-02",)
    assert select_hosts(fleet, host="lab-03") == ("lab-03",)
    assert select_hosts(fleet, ring="broad", host="lab-03") == ("lab-03",)


@pytest.mark.parametrize(
    ("ring", "host", "message"),
    [
        (None, "lab01", "unknown host 'lab01' (did you mean 'lab-01'?)"),
        (None, "db", "unknown host 'db'"),
        ("canry", None, "unknown ring 'canry' (did you mean 'canary'?)"),
        ("x", None, "unknown ring 'x' (rings: canary, pilot, broad)"),
        ("pilot", "lab-01", "host 'lab-01' is not in ring 'pilot' (it is in ring 'canary')"),
    ],
)
def test_select_hosts_rejects_unknown_names(
    fleet: Inventory, ring: str | None, host: str | None, message: str
) -> None:
    with pytest.raises(UnknownHostError) as caught:
        select_hosts(fleet, ring=ring, host=host)
    assert caught.value.message == message


def test_unknown_host_suggests_the_closest_name() -> None:
    hosts = {
        f"lab-{n:02}": InventoryHost(name=f"lab-{n:02}", address="x", location=SourceLocation("i"))
        for n in range(1, 10)
    }
    with pytest.raises(UnknownHostError) as caught:
        select_hosts(Inventory(hosts=hosts), host="lab-7")
    assert caught.value.message == "unknown host 'lab-7' (did you mean 'lab-07'?)"


def test_select_hosts_with_no_rings_defined() -> None:
    with pytest.raises(UnknownHostError) as caught:
        select_hosts(Inventory(), ring="canary")
    assert caught.value.message == "unknown ring 'canary' (no rings are defined)"


def test_rings_named_only_by_hosts_are_known_when_none_are_defined(tmp_path: Path) -> None:
    source = repo(tmp_path, {"inventory/lab.yml": LAB})
    inventory = load_inventory(source)
    assert inventory.rings == ()
    assert inventory.ring_names() == ("canary", "pilot", "broad")
    assert select_hosts(inventory, ring="canary") == ("lab-01",)


def test_one_file_by_relative_or_absolute_path(tmp_path: Path) -> None:
    source = repo(tmp_path, {"inventory/lab.yml": LAB, "inventory/other.yml": "hosts: {}\n"})
    assert load_inventory(source, "inventory/lab.yml").files == ("inventory/lab.yml",)
    absolute = str(tmp_path / "inventory" / "lab.yml")
    assert load_inventory(source, absolute).files == ("inventory/lab.yml",)


def test_an_inventory_outside_the_project_is_located_absolutely(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "fleet.yml").write_text("hosts:\n  a: {adress: x}\n", encoding="utf-8")
    source = repo(tmp_path / "project", {"policies/.keep": ""})
    folder = outside.resolve().as_posix()
    assert problems(source, str(outside)) == [
        f"{folder}/fleet.yml:2:6: error: missing required key 'address'",
        f"{folder}/fleet.yml:2:7: error: unknown key 'adress' (did you mean 'address'?)",
    ]
    assert problems(source, str(outside / "fleet.yml"))[0].startswith(f"{folder}/fleet.yml:2:6:")


def test_relative_ssh_paths_resolve_against_the_file_folder(tmp_path: Path) -> None:
    text = "ssh: {identity_file: keys/id_ed25519, known_hosts: ../known_hosts, port: 2222}\n"
    source = repo(tmp_path, {"inventory/site/ssh.yml": text})
    inventory = load_inventory(source)
    root = tmp_path.resolve()
    assert inventory.ssh.identity_file == str(root / "inventory" / "site" / "keys" / "id_ed25519")
    assert inventory.ssh.known_hosts == str(root / "inventory" / "known_hosts")
    assert inventory.ssh.port == 2222


def test_names_defined_in_two_files_name_both(tmp_path: Path) -> None:
    files = {
        "inventory/a.yml": (
            "ssh: {user: admin}\n"
            "vars: {agent_port: 1}\n"
            "groups: {web: {}}\n"
            "rings: [{name: canary}]\n"
            "hosts:\n"
            "  web-01: {address: 10.0.0.1}\n"
        ),
        "inventory/b.yml": (
            "hosts:\n"
            "  web-01: {address: 10.0.0.2}\n"
            "rings:\n"
            "  - name: canary\n"
            "groups:\n"
            "  web: {vars: {x: 1}}\n"
            "vars:\n"
            "  agent_port: 2\n"
            "ssh:\n"
            "  user: root\n"
        ),
    }
    assert problems(repo(tmp_path, files)) == [
        "inventory/b.yml:2:3: error: duplicate "
        "host 'web-01' (first defined at inventory/a.yml:6:3)",
        "inventory/b.yml:4:11: error: duplicate "
        "ring 'canary' (first defined at inventory/a.yml:4:16)",
        "inventory/b.yml:6:3: error: duplicate group 'web' (first defined at inventory/a.yml:3:10)",
        "inventory/b.yml:8:3: error: duplicate "
        "var 'agent_port' (first defined at inventory/a.yml:2:20)",
        "inventory/b.yml:9:1: error: duplicate ssh section (first defined at inventory/a.yml:1:1)",
    ]


def test_host_rings_must_be_defined_when_rings_are(tmp_path: Path) -> None:
    files = {
        "inventory/rings.yml": "rings: [{name: canary}, {name: broad}]\n",
        "inventory/hosts.yml": (
            "hosts:\n"
            "  a: {address: 10.0.0.1, ring: canry}\n"
            "  b: {address: 10.0.0.2, ring: pilot}\n"
            "  c: {address: 10.0.0.3}\n"
        ),
    }
    assert problems(repo(tmp_path, files)) == [
        "inventory/hosts.yml:2:32: error: unknown ring 'canry' (did you mean 'canary'?)",
        "inventory/hosts.yml:3:32: error: unknown ring 'pilot' (defined rings: canary, broad)",
    ]


def test_schema_and_variable_problems_in_every_file(tmp_path: Path) -> None:
    files = {
        "inventory/a.yml": (
            "hosts:\n"
            "  lab-01: {adress: 1}\n"
            "  lab-02: {address: x, port: abc, groups: web}\n"
            "ssh: {connect_timeout: 0, usr: root}\n"
        ),
        "inventory/b.yml": (
            "vars: {a-b: 1, host: 2}\n"
            "groups: {web: {vars: {9lives: 1}}}\n"
            "rings: [{name: canary, vars: {ok: 1, not ok: 2}}]\n"
        ),
        "inventory/c.yml": "",
    }
    assert problems(repo(tmp_path, files)) == [
        "inventory/a.yml:2:11: error: missing required key 'address'",
        "inventory/a.yml:2:12: error: unknown key 'adress' (did you mean 'address'?)",
        "inventory/a.yml:3:30: error: 'abc' is not an integer",
        "inventory/a.yml:3:43: error: expected a list, got a string",
        "inventory/a.yml:4:24: error: must be greater than or equal to 1, got 0",
        "inventory/a.yml:4:27: error: unknown key 'usr' (did you mean 'user'?)",
        "inventory/b.yml:1:8: error: variable name 'a-b' is not usable in templates "
        "(use letters, digits and _)",
        "inventory/b.yml:1:16: warning: variable 'host' is shadowed by the built-in 'host' "
        "(host.name, host.address, host.ring, host.groups), which templates see; "
        "choose another name",
        "inventory/b.yml:2:23: error: variable name '9lives' is not usable in templates "
        "(use letters, digits and _)",
        "inventory/b.yml:3:38: error: variable name 'not ok' is not usable in templates "
        "(use letters, digits and _)",
        "inventory/c.yml:1:1: error: empty inventory file",
    ]


def test_a_missing_inventory_is_one_error(tmp_path: Path) -> None:
    source = repo(tmp_path, {"inventory/notes.txt": "x"})
    assert problems(source) == [
        "inventory: error: no inventory found (neither a file nor a folder of .yml or .yaml files)"
    ]
    inventory, found = collect_inventory(source, "hosts.yml")
    assert inventory is None
    assert [str(d) for d in found] == [
        "hosts.yml: error: no inventory found (neither a file nor a folder of .yml or .yaml files)"
    ]


def test_an_inventory_path_may_not_leave_the_project(tmp_path: Path) -> None:
    source = repo(tmp_path, {"inventory/a.yml": "hosts: {}\n"})
    assert problems(source, "../inventory") == [
        "../inventory: error: '../inventory' leaves the repository ('..' is not allowed); "
        "give an absolute path for an inventory outside the project"
    ]


def test_an_inventory_without_hosts_says_so_and_how_to_get_some() -> None:
    with pytest.raises(UnknownHostError) as caught:
        select_hosts(Inventory())
    assert caught.value.message == "the inventory has no hosts"
    assert "patchring lab up" in (caught.value.hint or "")


def test_a_ring_without_hosts_is_named(tmp_path: Path) -> None:
    text = "rings: [{name: canary}, {name: pilot}]\nhosts:\n  a: {address: 10.0.0.1, ring: canary}"
    inventory = load_inventory(repo(tmp_path, {"inventory/x.yml": text}))
    with pytest.raises(UnknownHostError) as caught:
        select_hosts(inventory, ring="pilot")
    assert caught.value.message == "ring 'pilot' has no hosts"
