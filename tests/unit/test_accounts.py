"""Groups, users (exact groups, create_home, a password hash) and sysctls in a named file:
loader errors pinned by exact text, resolution, plan diffs, probe parsing, checks, masking and
the schema."""

from __future__ import annotations

import base64
from pathlib import Path

import jsonschema
import pytest
import yaml

from orchestrator.drift.changes import diff_host
from orchestrator.drift.expected import password_digest
from orchestrator.drift.observed import (
    Observation,
    ObservedGroup,
    ObservedSysctl,
    ObservedUser,
)
from orchestrator.drift.probe import build_probe_script, parse_probe_output
from orchestrator.errors import ValidationError
from orchestrator.model.policy import Group, Sysctl, User
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.policy.schema import policy_json_schema
from orchestrator.secrets import Masker
from orchestrator.verify.checks import plan_checks
from tests.unit.builders import desired


def _user(**fields: object) -> User:
    """A user as resolution hands it on: rendered, so a hash is checked as a hash."""
    return User.model_validate(fields, context={"rendered": True})


REPO = Path(__file__).resolve().parents[2]
HASH = (
    "$6$Fq0jx2Lm$zxnzNN5l0gaw1GCi9PehsvfPTUtSCgCiTxsoz6hkNVJ.nQDro/MuqqVdT48N79cWyuMwRulRnKJPdb"
    "qDC2wMw0"
)
YESCRYPT = "$y$j9T$PaQ0vUGx8wWhBrNdSzlxs/$JdkOZhuAJTKe9L/ImBPJd1Bgl1VBhwrq5G6UBWS.2F."
INVENTORY = f"""\
vars:
  deploy_login: '{HASH}'
  typo_login: hunter2
hosts:
  web-01: {{address: 10.0.0.1}}
  web-02: {{address: 10.0.0.2}}
"""


def _source(tmp_path: Path, policies: dict[str, str], inventory: str = INVENTORY) -> WorktreeSource:
    files = {"inventory/hosts.yml": inventory, **policies}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def _problems(tmp_path: Path, policy: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_project(_source(tmp_path, {"policies/a.yml": policy}))
    return [str(d) for d in caught.value.diagnostics]


def test_loader_errors_are_located_and_never_show_a_password(tmp_path: Path) -> None:
    policy = f"""\
name: a
select: {{all: true}}
sysctl_file: /etc/sysctl.d/tuning
sysctl:
  - {{key: vm.swappiness, value: 10, file: /etc/sysctl.conf}}
groups:
  - {{name: ops, gid: -1}}
users:
  - {{name: deploy, groups_mode: exakt}}
  - {{name: literal, password: '{HASH}'}}
  - {{name: plain, password: hunter2}}
"""
    assert _problems(tmp_path, policy) == [
        "policies/a.yml:3:14: error: '/etc/sysctl.d/tuning' is not a file of /etc/sysctl.d/ "
        "ending in .conf (like /etc/sysctl.d/60-net.conf)",
        "policies/a.yml:5:43: error: '/etc/sysctl.conf' is not a file of /etc/sysctl.d/ "
        "ending in .conf (like /etc/sysctl.d/60-net.conf)",
        "policies/a.yml:7:22: error: must be greater than or equal to 0, got -1",
        "policies/a.yml:9:33: error: expected 'append' or 'exact', got 'exakt' (did you mean "
        "'exact'?)",
        "policies/a.yml:10:31: error: a password hash must come from a secret variable, not the "
        "policy text: set it in the inventory (e.g. under secret_vars) and write password: "
        "'{{ name_of_the_variable }}'",
        "policies/a.yml:11:29: error: password is not a crypt(3) hash ($y$..., $6$... or $5$..., "
        "e.g. from `mkpasswd -m yescrypt`) nor '!' or '*' for a locked account; the value is not "
        "shown",
    ]


def test_a_rendered_password_that_is_no_hash_is_located_without_its_value(tmp_path: Path) -> None:
    policy = "name: a\nselect: {all: true}\nusers:\n  - {name: d, password: '{{ typo_login }}'}\n"
    found = _problems(tmp_path, policy)
    assert found == [
        "policies/a.yml:4:25: error: password is not a crypt(3) hash ($y$..., $6$... or $5$..., "
        "e.g. from `mkpasswd -m yescrypt`) nor '!' or '*' for a locked account; the value is not "
        "shown (host web-01)"
    ]
    assert "hunter2" not in "".join(found)


def test_a_password_variable_is_secret_whatever_its_name(tmp_path: Path) -> None:
    policy = (
        "name: a\nselect: {all: true}\nsysctl_file: /etc/sysctl.d/60-tuning.conf\n"
        "sysctl:\n  - {key: vm.swappiness, value: 10}\n"
        "  - {key: vm.overcommit_memory, value: 1, file: /etc/sysctl.d/70-memory.conf}\n"
        "users:\n  - {name: deploy, password: '{{ deploy_login }}'}\n  - {name: locked, "
        "password: '!'}\n"
    )
    project = load_project(_source(tmp_path, {"policies/a.yml": policy}))
    assert HASH in project.secrets
    masked = Masker(project.secrets)(f"usermod -p {HASH} deploy")
    assert masked == "usermod -p ******** deploy"
    specs = {r.id: r.spec for r in project.desired["web-01"].resources}
    assert specs["sysctl:vm.swappiness"] == Sysctl(
        key="vm.swappiness", value="10", file="/etc/sysctl.d/60-tuning.conf"
    )
    assert specs["sysctl:vm.overcommit_memory"].file == "/etc/sysctl.d/70-memory.conf"  # type: ignore[union-attr]
    assert specs["user:locked"] == User(name="locked", password="!")


def test_two_policies_persisting_a_key_in_different_files_conflict(tmp_path: Path) -> None:
    one = "name: one\nselect: {all: true}\nsysctl: [{key: vm.swappiness, value: 10}]\n"
    two = (
        "name: two\nselect: {all: true}\nsysctl_file: /etc/sysctl.d/60-x.conf\n"
        "sysctl: [{key: vm.swappiness, value: 10}]\n"
    )
    with pytest.raises(ValidationError) as caught:
        load_project(_source(tmp_path, {"policies/one.yml": one, "policies/two.yml": two}))
    assert [str(d) for d in caught.value.diagnostics] == [
        "policies/two.yml:4:10: error: sysctl 'vm.swappiness' file '/etc/sysctl.d/60-x.conf' "
        "conflicts with file null (the default) at policies/one.yml:3:10"
    ]


def test_plan_diffs_groups_users_and_the_persisted_line() -> None:
    state = desired(
        Sysctl(key="vm.swappiness", value="20", file="/etc/sysctl.d/60-tuning.conf"),
        Group(name="ops", gid=2001),
        Group(name="gone", present=False),
        _user(name="deploy", groups=("ops",), groups_mode="exact", password=HASH),
    )
    seen = Observation(
        sysctls={
            "vm.swappiness": ObservedSysctl(
                key="vm.swappiness",
                value="20",
                persist_file="/etc/sysctl.d/60-tuning.conf",
                persisted_lines=("vm.swappiness = 10", "vm.swappiness=30"),
            )
        },
        groups={"ops": ObservedGroup(name="ops", exists=True, gid=1001), "gone": ObservedGroup(
            name="gone", exists=True, gid=1002)},
        users={
            "deploy": ObservedUser(
                name="deploy", exists=True, group="deploy", groups=("deploy", "ops", "sudo"),
                home="/home/deploy", home_exists=True, password_digest=password_digest("!"),
            )
        },
    )  # fmt: skip
    changes = {c.resource_id: c for c in diff_host(state, seen)}
    assert list(changes) == ["group:ops", "group:gone", "user:deploy", "sysctl:vm.swappiness"]
    assert changes["group:ops"].summary == "group ops: gid 1001 -> 2001"
    assert changes["group:gone"].summary == "group gone -> absent"
    user = changes["user:deploy"]
    assert user.summary == "user deploy: groups ops,sudo -> ops (exactly), password changed"
    assert HASH not in user.model_dump_json()
    persist = changes["sysctl:vm.swappiness"]
    assert persist.summary == "vm.swappiness = 20: persist in /etc/sysctl.d/60-tuning.conf"
    assert persist.diff == (
        "--- /etc/sysctl.d/60-tuning.conf (current)\n+++ /etc/sysctl.d/60-tuning.conf\n"
        "@@ -1,2 +1 @@\n-vm.swappiness = 10\n-vm.swappiness=30\n+vm.swappiness = 20\n"
    )
    converged = seen.model_copy(
        update={
            "sysctls": {"vm.swappiness": ObservedSysctl(
                key="vm.swappiness", value="20", persisted_lines=("vm.swappiness=20",))},
            "groups": {"ops": ObservedGroup(name="ops", exists=True, gid=2001)},
            "users": {"deploy": ObservedUser(
                name="deploy", exists=True, group="deploy", groups=("deploy", "ops"),
                home_exists=True, password_digest=password_digest(HASH))},
        }
    )  # fmt: skip
    assert diff_host(state, converged) == ()


def test_append_keeps_other_groups_and_a_system_user_gets_no_home() -> None:
    state = desired(User(name="svc", system=True, groups=("adm",)))
    seen = Observation(
        users={
            "svc": ObservedUser(name="svc", exists=True, group="svc", groups=("svc", "adm", "x"))
        }
    )
    assert diff_host(state, seen) == ()
    assert desired(User(name="svc", system=True, create_home=True)).resources[0].spec.makes_home  # type: ignore[union-attr]


def test_the_probe_reads_persisted_lines_groups_and_only_a_digest_of_the_shadow_field() -> None:
    state = desired(
        Sysctl(key="net.ipv4.conf.all.rp_filter", value="1"),
        Group(name="ops"),
        _user(name="deploy", password=HASH),
        User(name="other"),
    )
    script = build_probe_script(state)
    assert (
        "sct net.ipv4.conf.all.rp_filter '^[[:space:]]*-?net\\.ipv4\\.conf\\.all\\.rp_filter"
        in script
    )
    assert "usr deploy 1\n" in script and "usr other 0\n" in script and "grp ops\n" in script
    assert HASH not in script
    lines = base64.b64encode(b"net.ipv4.conf.all.rp_filter = 2\n").decode()
    digest = password_digest(HASH)
    output = (
        "patchring-probe 1\n"
        f"sysctl\tnet.ipv4.conf.all.rp_filter\t2\t/etc/sysctl.d/90-patchring.conf\t{lines}\n"
        "group\tops\t2001\n"
        f"user\tdeploy\t1000\tdeploy\tdeploy,ops\t/home/deploy\t/bin/sh\tyes\t{digest}\n"
        "user\tother\t-\n"
        "patchring-probe-end\n"
    )
    seen = parse_probe_output(output)
    assert seen.sysctls["net.ipv4.conf.all.rp_filter"].persisted_lines == (
        "net.ipv4.conf.all.rp_filter = 2",
    )
    assert seen.groups["ops"] == ObservedGroup(name="ops", exists=True, gid=2001)
    assert seen.users["deploy"].password_digest == digest and seen.users["deploy"].home_exists
    assert not seen.users["other"].exists


def test_generated_checks_for_every_property_without_the_hash() -> None:
    state = desired(
        Sysctl(key="vm.swappiness", value="20", file="/etc/sysctl.d/60-tuning.conf"),
        Group(name="ops", gid=2001),
        _user(name="deploy", uid=2001, groups=("ops",), groups_mode="exact", password=YESCRYPT),
    )
    found = {c.spec.id: (c.probe, c.subject, c.want, c.spec.title) for c in plan_checks(state)}
    assert found == {
        "base/group:ops/present": ("group.present", "ops", "", "group ops exists"),
        "base/group:ops/gid": ("group.gid", "ops", "2001", "group ops has gid 2001"),
        "base/user:deploy/present": ("user.present", "deploy", "", "user deploy exists"),
        "base/user:deploy/uid": ("user.uid", "deploy", "2001", "user deploy has uid 2001"),
        "base/user:deploy/groups": (
            "user.groups_exact", "deploy", "ops",
            "user deploy is in exactly the supplementary groups ops",
        ),
        "base/user:deploy/home_exists": (
            "user.home_exists", "/home/deploy", "",
            "user deploy: home directory /home/deploy exists",
        ),
        "base/user:deploy/password": (
            "user.password", "deploy", password_digest(YESCRYPT),
            "user deploy has the password hash the policy sets",
        ),
        "base/sysctl:vm.swappiness/value": (
            "sysctl.value", "vm.swappiness", "20", "sysctl vm.swappiness = 20"
        ),
        "base/sysctl:vm.swappiness/persisted": (
            "sysctl.persisted", "/etc/sysctl.d/60-tuning.conf", "vm.swappiness = 20",
            "sysctl vm.swappiness = 20 is persisted in /etc/sysctl.d/60-tuning.conf",
        ),
    }  # fmt: skip
    specs = [c.spec.model_dump_json() for c in plan_checks(state)]
    assert not any(YESCRYPT in text for text in specs)


def test_the_schema_covers_the_new_keys_and_validates_the_examples() -> None:
    schema = policy_json_schema()
    assert {"groups", "sysctl_file"} <= set(schema["properties"])
    assert set(schema["$defs"]["Group"]["properties"]) == {
        "name",
        "present",
        "gid",
        "system",
        "after",
    }
    user = schema["$defs"]["User"]["properties"]
    assert {"groups_mode", "create_home", "password"} <= set(user)
    assert user["groups_mode"]["enum"] == ["append", "exact"]
    assert "file" in schema["$defs"]["Sysctl"]["properties"]
    for example in sorted((REPO / "policies").glob("*.yml")):
        jsonschema.validate(yaml.safe_load(example.read_text()), schema)
    accounts = yaml.safe_load((REPO / "policies" / "accounts.yml").read_text())
    assert accounts["groups"] and accounts["users"][0]["groups_mode"] == "exact"


def test_every_account_spec_binds_to_its_pyinfra_operation() -> None:
    import inspect

    from orchestrator.compiler import compile_host
    from orchestrator.engine.operations import OPERATIONS

    state = desired(
        Group(name="ops", gid=2001),
        _user(name="deploy", uid=2001, groups=(), groups_mode="exact", password=YESCRYPT),
        Sysctl(key="vm.swappiness", value="20", file="/etc/sysctl.d/60-tuning.conf"),
    )
    ops = compile_host(state)
    assert {op.operation for op in ops} == {"server.group", "server.user", "server.shell",
                                            "server.sysctl"}  # fmt: skip
    for op in ops:
        func = OPERATIONS[op.operation]
        inspect.signature(getattr(func, "_inner", func)).bind(**op.args)
