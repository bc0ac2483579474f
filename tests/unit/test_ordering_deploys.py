"""`after` ordering, deploys from the policy repository, warnings, and every error in one run.

Loader and resolution errors are pinned by their exact text; the compiled order is pinned by the
golden cases in test_compiler.py (after_*), and checked here for the properties that matter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.compiler import compile_host
from orchestrator.engine.operations import resolve_deploy
from orchestrator.errors import ValidationError
from orchestrator.model.order import find_cycles, topological_order
from orchestrator.model.policy import Command, File, Package, Service
from orchestrator.policy import Project, WorktreeSource, load_project
from tests.unit.builders import desired

HOSTS = """\
groups:
  web: {}
hosts:
  web-01: {address: 10.0.0.1, groups: [web]}
  web-02: {address: 10.0.0.2, groups: [web], vars: {port: 81}}
"""


def load(tmp_path: Path, files: dict[str, str]) -> Project:
    for name, text in {"inventory/hosts.yml": HOSTS, **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return load_project(WorktreeSource(tmp_path))


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load(tmp_path, files)
    return [str(d) for d in caught.value.diagnostics]


# --- ordering -----------------------------------------------------------------------------

ORDERED = """\
name: web
select: {all: true}
packages:
  - name: curl
  - name: nginx
    after: [file:/usr/sbin/policy-rc.d]
files:
  - path: /usr/sbin/policy-rc.d
    content: "exit 101\\n"
    mode: "0755"
services:
  - name: nginx
commands:
  - name: warm
    run: curl -s localhost
    unless: "false"
    after: [service:nginx]
"""


def test_after_puts_resources_in_their_apply_order(tmp_path: Path) -> None:
    state = load(tmp_path, {"policies/web.yml": ORDERED}).desired["web-01"]
    assert [r.id for r in state.resources] == [
        "package:curl",
        "file:/usr/sbin/policy-rc.d",
        "package:nginx",
        "service:nginx",
        "command:warm",
    ]


def test_a_constraint_splits_the_install_batch_and_apt_update_stays_first(
    tmp_path: Path,
) -> None:
    state = load(tmp_path, {"policies/web.yml": ORDERED}).desired["web-01"]
    ops = [(op.operation, op.resource_ids) for op in compile_host(state)]
    assert ops == [
        ("apt.update", ("package:curl",)),
        ("apt.packages", ("package:curl",)),
        ("files.put", ("file:/usr/sbin/policy-rc.d",)),
        ("apt.packages", ("package:nginx",)),
        ("systemd.service", ("service:nginx",)),
        ("server.shell", ("command:warm",)),
    ]


def test_only_the_drifted_resources_keep_the_order() -> None:
    state = desired(
        Package(name="nginx", after=("file:/usr/sbin/policy-rc.d",)),
        File(path="/usr/sbin/policy-rc.d", content="exit 101\n"),
    )
    ops = compile_host(state, only={"package:nginx", "file:/usr/sbin/policy-rc.d"})
    assert [op.operation for op in ops] == ["files.put", "apt.update", "apt.packages"]
    assert [op.operation for op in compile_host(state, only={"package:nginx"})] == [
        "apt.update",
        "apt.packages",
    ]


def test_without_after_the_default_order_is_unchanged() -> None:
    state = desired(Service(name="web"), File(path="/etc/a", content="a"), Package(name="web"))
    assert [r.id for r in topological_order(state.resources)] == [r.id for r in state.resources]


def test_a_command_after_a_service_runs_after_its_restart() -> None:
    state = desired(
        File(path="/etc/web.conf", content="x", restart=("web",)),
        Service(name="web"),
        Command(name="warm", run="true", unless="false", after=("service:web",)),
    )
    ops = [op.description for op in compile_host(state)]
    assert ops[-3:] == [
        "service web",
        "restart web.service (/etc/web.conf changed)",
        "command warm",
    ]


def test_unknown_ids_in_after_are_located_at_the_entry(tmp_path: Path) -> None:
    policy = "name: web\nselect: {all: true}\npackages:\n  - name: nginx\n    after: [file:/etc/x, pakage:nginx]\n"  # noqa: E501
    assert problems(tmp_path, {"policies/web.yml": policy}) == [
        "policies/web.yml:5:13: error: after: no resource 'file:/etc/x' on this host (host web-01)",
        "policies/web.yml:5:26: error: after: no resource 'pakage:nginx' on this host "
        "(did you mean 'package:nginx'?) (host web-01)",
    ]


def test_an_after_entry_must_be_a_resource_id(tmp_path: Path) -> None:
    policy = "name: web\nselect: {all: true}\npackages:\n  - name: nginx\n    after: [nginx]\n"
    assert problems(tmp_path, {"policies/web.yml": policy}) == [
        "policies/web.yml:5:13: error: 'nginx' is not a resource id (kind:key, like package:nginx)"
    ]


CYCLE = """\
name: web
select: {all: true}
packages:
  - name: nginx
    after: [service:nginx]
files:
  - path: /etc/a
    content: a
    after: [package:nginx]
services:
  - name: nginx
    after: [file:/etc/a]
"""


def test_a_cycle_is_one_error_naming_every_resource_in_it(tmp_path: Path) -> None:
    assert problems(tmp_path, {"policies/web.yml": CYCLE}) == [
        "policies/web.yml:5:13: error: after: ordering cycle: package:nginx after service:nginx "
        "after file:/etc/a after package:nginx (host web-01)"
    ]


def test_a_cycle_across_policies_is_found_after_merging(tmp_path: Path) -> None:
    a = "name: a\nselect: {all: true}\npackages:\n  - name: nginx\n    after: [file:/etc/a]\n"
    b = "name: b\nselect: {all: true}\nfiles:\n  - path: /etc/a\n    content: a\n    after: [package:nginx]\n"  # noqa: E501
    c = "name: c\nselect: {all: true}\npackages:\n  - name: nginx\n    after: [file:/etc/a]\n"
    assert problems(tmp_path, {"policies/a.yml": a, "policies/b.yml": b, "policies/c.yml": c}) == [
        "policies/a.yml:5:13: error: after: ordering cycle: package:nginx after file:/etc/a "
        "after package:nginx (host web-01)"
    ]


def test_find_cycles_names_members_off_the_shortest_walk() -> None:
    state = desired(
        Package(name="a", after=("package:b",)),
        Package(name="b", after=("package:a", "package:c")),
        Package(name="c", after=("package:b",)),
    )
    assert find_cycles(state.resources) == [
        (["package:a", "package:b", "package:a"], ["package:c"])
    ]


def test_duplicates_merge_their_after_lists(tmp_path: Path) -> None:
    a = "name: a\nselect: {all: true}\npackages:\n  - name: nginx\n"
    b = "name: b\nselect: {all: true}\npackages:\n  - name: nginx\n    after: [file:/etc/a]\nfiles:\n  - path: /etc/a\n    content: a\n"  # noqa: E501
    state = load(tmp_path, {"policies/a.yml": a, "policies/b.yml": b}).desired["web-01"]
    assert [r.id for r in state.resources] == ["file:/etc/a", "package:nginx"]


# --- every error at once ----------------------------------------------------------------


def test_an_invalid_entry_does_not_hide_errors_of_later_stages(tmp_path: Path) -> None:
    policy = """\
name: web
select: {all: true}
files:
  - path: /etc/a.conf
    content: "a"
    mode: 0640
  - path: /etc/b.conf
    template: templates/missing.j2
"""
    assert problems(tmp_path, {"policies/web.yml": policy}) == [
        'policies/web.yml:6:11: error: expected a string, got a number (quote it: "0640")',
        "policies/web.yml:8:15: error: template file 'templates/missing.j2' not found",
    ]


def test_every_file_and_stage_reports_in_one_run(tmp_path: Path) -> None:
    a = 'name: a\nselect: {all: true}\nbogus: 1\npackages:\n  - name: nginx\n    version: "1.0"\n  - {name: curl, state: gone}\nfiles:\n  - {path: /etc/x, content: "{{ nope }}"}\n'  # noqa: E501
    b = 'name: b\nselect: {all: true}\npackages:\n  - name: nginx\n    version: "2.0"\n    after: [package:curl]\n'  # noqa: E501
    assert problems(tmp_path, {"policies/a.yml": a, "policies/b.yml": b}) == [
        "policies/a.yml:3:1: error: unknown key 'bogus' (allowed: name, description, select, "
        "vars, apt_repositories, packages, files, lines, settings, blocks, directories, "
        "services, sysctl, sysctl_file, groups, users, commands, patches, deploy, patch_baseline, "
        "checks, template_options)",
        "policies/a.yml:7:25: error: expected 'present', 'absent' or 'latest', got 'gone'",
        "policies/a.yml:9:29: error: 'nope' is undefined (host web-01)",
        "policies/b.yml:5:14: error: package 'nginx' version '2.0' conflicts with version "
        "'1.0' set at policies/a.yml:6:14",
    ]


def test_a_bad_name_keeps_nothing_of_the_file_but_reports_all(tmp_path: Path) -> None:
    policy = (
        "name: 'bad name'\nselect: {all: true}\nfiles:\n  - {path: /etc/a, content: a, mode: 999}\n"
    )
    assert problems(tmp_path, {"policies/web.yml": policy}) == [
        "policies/web.yml:1:7: error: 'bad name' is not a valid name (letters, digits, _ . + -; "
        "starting with a letter or digit)",
        'policies/web.yml:4:38: error: expected a string, got a number (quote it: "999")',
    ]


# --- warnings -----------------------------------------------------------------------------


def test_a_var_named_host_is_a_warning_and_the_builtin_wins(tmp_path: Path) -> None:
    policy = 'name: web\nselect: {all: true}\nvars: {host: x}\nfiles:\n  - {path: /etc/a, content: "{{ host.name }} {{ host.ring }} {{ host.groups }}"}\n'  # noqa: E501
    project = load(tmp_path, {"policies/web.yml": policy})
    assert [str(w) for w in project.warnings] == [
        "policies/web.yml:3:8: warning: variable 'host' is shadowed by the built-in 'host' "
        "(host.name, host.address, host.ring, host.groups), which templates see; choose "
        "another name"
    ]
    assert project.desired["web-01"].resources[0].content == "web-01 None ['web']"


def test_a_default_the_inventory_always_overrides_is_a_warning(tmp_path: Path) -> None:
    hosts = HOSTS.replace("web: {}", "web: {vars: {port: 80}}")
    files = {
        "inventory/hosts.yml": hosts,
        "policies/web.yml": "name: web\nselect: {groups: [web]}\nvars: {port: 8080, keep: 1}\n",
        "policies/one.yml": "name: one\nselect: {hosts: [web-02]}\nvars: {port: 8080}\n",
    }
    project = load(tmp_path, files)
    assert [str(w) for w in project.warnings] == [
        "policies/one.yml:3:8: warning: default of variable 'port' is never used: the inventory "
        "sets it on every host this policy selects (e.g. at inventory/hosts.yml:5:59 for host "
        "web-02); change it there, or remove this default",
        "policies/web.yml:3:8: warning: default of variable 'port' is never used: the inventory "
        "sets it on every host this policy selects (e.g. at inventory/hosts.yml:2:22 for host "
        "web-01); change it there, or remove this default",
    ]


def test_validate_prints_warnings_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load(tmp_path, {"policies/web.yml": "name: web\nselect: {all: true}\nvars: {host: x}\n"})
    assert main(["validate", "--repo", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: 1 policy, 2 hosts, 0 resources resolved, no errors, 1 warning\n"
    assert err.startswith("policies/web.yml:3:8: warning: variable 'host' is shadowed")
    assert main(["validate", "--repo", str(tmp_path), "--json"]) == 0
    out, _ = capsys.readouterr()
    assert '"location": "policies/web.yml:3:8"' in out and '"severity": "warning"' in out


def test_warnings_are_listed_with_errors_but_not_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = "name: web\nselect: {all: true}\nvars: {host: x}\npackages:\n  - name: 'a b'\n"
    load_files = {"policies/web.yml": policy}
    with pytest.raises(ValidationError):
        load(tmp_path, load_files)
    assert main(["validate", "--repo", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("policies/web.yml:3:8: warning:")
    assert err[1].startswith("policies/web.yml:5:11: error:")
    assert err[2] == "patchring: 1 error found; nothing was changed"


# --- deploys from the policy repository ---------------------------------------------------

BANNER = """\
from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files


@deploy("Login banner")
def configure_banner(text: str, *, mode: str = "644") -> None:
    files.put(name="banner", src=StringIO(text), dest="/etc/issue.net", mode=mode)
"""


def deploy_policy(use: str, args: str, name: str = "web") -> str:
    return f"name: {name}\nselect: {{all: true}}\ndeploy:\n  - name: {name}\n    use: {use}\n    args: {args}\n"  # noqa: E501


def test_a_repo_deploy_is_read_through_the_source_and_compiled_with_it(tmp_path: Path) -> None:
    files = {
        "deploys/site/banner.py": BANNER,
        "policies/web.yml": deploy_policy("site.banner:configure_banner", "{text: hi}"),
    }
    state = load(tmp_path, files).desired["web-01"]
    (op,) = compile_host(state)
    assert (op.operation, op.args, op.module_source) == (
        "deploy:site.banner:configure_banner",
        {"text": "hi"},
        BANNER,
    )


def test_the_engine_loads_a_repo_deploy_without_sys_modules() -> None:
    import sys

    before = set(sys.modules)
    first = resolve_deploy("site.banner:configure_banner", BANNER)
    other = resolve_deploy("site.banner:configure_banner", BANNER.replace("644", "600"))
    assert first.__name__ == "configure_banner" and first is not other
    assert set(sys.modules) - before <= {"pyinfra.operations.files"}
    assert not any(name.startswith("policy_repository") for name in sys.modules)


def test_the_repo_wins_over_the_installed_package(tmp_path: Path) -> None:
    own = "def configure_motd(text):\n    pass\n"
    files = {
        "deploys/motd.py": own,
        "policies/web.yml": deploy_policy("motd:configure_motd", "{text: hi}"),
    }
    assert compile_host(load(tmp_path, files).desired["web-01"])[0].module_source == own


def test_an_installed_deploy_is_checked_and_left_to_the_engine(tmp_path: Path) -> None:
    files = {"policies/web.yml": deploy_policy("motd:configure_motd", "{message: hi}")}
    (op,) = compile_host(load(tmp_path, files).desired["web-01"])
    assert (op.operation, op.module_source) == ("deploy:motd:configure_motd", None)


def test_deploy_problems_are_located_without_running_it(tmp_path: Path) -> None:
    files = {
        "deploys/site/banner.py": BANNER + "\nraise SystemExit('never imported')\n",
        "deploys/broken.py": "def configure(:\n",
        "policies/a.yml": deploy_policy("site.banner:configure_baner", "{text: hi}"),
        "policies/b.yml": deploy_policy("site.banner:configure_banner", "{txt: hi}", "b"),
        "policies/c.yml": deploy_policy("nothere:run", "{}", "c"),
        "policies/d.yml": deploy_policy("motd:configure_motd", "{mode: '600'}", "d"),
        "policies/e.yml": deploy_policy("broken:configure", "{}", "e"),
    }
    assert problems(tmp_path, files) == [
        "policies/a.yml:5:10: error: deploys/site/banner.py has no deploy function "
        "'configure_baner' (did you mean 'configure_banner'?)",
        "policies/b.yml:6:12: error: args do not fit configure_banner(text: str, *, mode: str="
        "'644'): unknown argument 'txt' (did you mean 'text'?)",
        "policies/c.yml:5:10: error: deploy module 'nothere' not found: no deploys/nothere.py "
        "in the policy repository, and no module 'deploys.nothere' installed with patchring",
        "policies/d.yml:6:11: error: args do not fit configure_motd(message: str, mode: str="
        "'644'): missing a required argument: 'message'",
        "policies/e.yml:5:10: error: deploys/broken.py is not valid Python: invalid syntax "
        "(line 1)",
    ]


# --- schema -------------------------------------------------------------------------------


def test_the_schema_covers_after_and_validates_the_examples() -> None:
    import jsonschema
    import yaml

    from orchestrator.policy import policy_json_schema

    schema = policy_json_schema()
    for name in ("Package", "File", "Service", "Command", "Deploy"):
        assert schema["$defs"][name]["properties"]["after"]["type"] == "array"
    validator = jsonschema.Draft202012Validator(schema)
    repo = Path(__file__).resolve().parents[2]
    for name in ("acme-agent.yml", "lab-repo.yml"):  # (hardening's sysctl numbers: not yet)
        path = repo / "policies" / name
        validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    bad = {"name": "x", "select": {"all": True}, "packages": [{"name": "a", "aftr": []}]}
    assert not validator.is_valid(bad)
