"""Per-host resolution: selection, layered variables, rendering, conflicts, and the examples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.errors import UnknownHostError, ValidationError
from orchestrator.model.policy import File, Sysctl
from orchestrator.policy import Project, WorktreeSource, explain_host, load_project
from orchestrator.source import SourceLocation

REPO = Path(__file__).resolve().parents[2]

LAB = """\
ssh: {user: root, identity_file: /var/lib/patchring/labs/lab/id_ed25519, known_hosts: /var/lib/patchring/labs/lab/known_hosts}
vars: {lab_apt_url: "http://10.213.0.1:8080/", lab_apt_key: "-----BEGIN PGP PUBLIC KEY BLOCK-----\\n..."}
hosts:
  lab-01: {address: 10.213.0.11, ring: canary, groups: [lab, web]}
  lab-02: {address: 10.213.0.12, ring: pilot, groups: [lab, db]}
"""  # noqa: E501  (the exact shape `patchring lab up` writes)

HOSTS = """\
rings:
  - name: canary
    vars: {tier: ring}
  - name: broad
groups:
  web: {vars: {tier: web, colour: blue}}
  db: {vars: {tier: db, colour: green}}
vars:
  tier: all
hosts:
  web-01: {address: 10.0.0.1, ring: canary, groups: [web, db], vars: {owner: alice}}
  web-02: {address: 10.0.0.2, ring: broad, groups: [db, web], port: 2222}
  db-01: {address: 10.0.0.3, ring: broad, groups: [db]}
"""


def at(path: str, needle: str, col: int) -> str:
    """The location of the first line of an example file containing `needle` (so the tests stay
    exact while the examples are edited)."""
    lines = (REPO / path).read_text(encoding="utf-8").splitlines()
    return f"{path}:{next(n for n, line in enumerate(lines, 1) if needle in line)}:{col}"


def repo(tmp_path: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def load(tmp_path: Path, files: dict[str, str]) -> Project:
    return load_project(repo(tmp_path, {"inventory/hosts.yml": HOSTS, **files}))


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load(tmp_path, files)
    return [str(d) for d in caught.value.diagnostics]


# --- the example policies -----------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path) -> Project:
    for folder in ("policies", "templates", "files"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "inventory").mkdir()
    shutil.copy(REPO / "inventory" / "fleet.yml", tmp_path / "inventory" / "fleet.yml")
    (tmp_path / "inventory" / "lab.yml").write_text(LAB, encoding="utf-8")
    return load_project(WorktreeSource(tmp_path))


def test_example_policies_resolve_for_the_lab(example: Project) -> None:
    assert [p.name for p in example.policies] == ["accounts", "acme-agent", "hardening", "lab-repo"]
    state = example.desired["lab-01"]
    assert state.policies == ("acme-agent", "hardening", "lab-repo")
    assert [r.id for r in state.resources] == [
        "apt_repository:patchring-lab",
        "user:acme",
        "directory:/var/lib/acme",
        "package:acme-agent",
        "package:acme-tool",
        "patch:DSA-9001-1/acme-agent",
        "file:/etc/acme/agent.conf",
        "file:/etc/acme/ca.der",
        "line:/etc/login.defs:^#?\\s*FAILLOG_ENAB",
        "setting:/etc/login.defs:PASS_MAX_DAYS",
        "setting:/etc/login.defs:PASS_WARN_AGE",
        "block:/etc/issue.net:banner",
        "sysctl:net.ipv4.conf.all.send_redirects",
        "sysctl:net.ipv4.conf.all.accept_redirects",
        "service:acme-agent",
    ]
    repository = state.resources[0].spec
    assert (repository.url, repository.key) == (  # type: ignore[union-attr]
        "http://10.213.0.1:8080/",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...",
    )
    assert state.host.identity_file == "/var/lib/patchring/labs/lab/id_ed25519"
    assert state.host.known_hosts == "/var/lib/patchring/labs/lab/known_hosts"
    assert (state.host.ring, state.host.groups) == ("canary", ("lab", "web"))


def test_example_agent_config_follows_the_host_groups(example: Project) -> None:
    header = "# Managed by patchring (policies/acme-agent.yml); local changes are overwritten.\n"
    web = example.desired["lab-01"].resources[6]
    db = example.desired["lab-02"].resources[6]
    assert web.content == header + (
        "[agent]\nname = lab-01\nlisten = 0.0.0.0:7070\nlog_level = warning\n"
    )
    assert (
        db.content == header + "[agent]\nname = lab-02\nlisten = 0.0.0.0:7071\nlog_level = info\n"
    )
    assert isinstance(web.spec, File)
    assert (web.spec.mode, web.spec.restart) == ("0640", ("acme-agent",))
    template = at("policies/acme-agent.yml", "    template: templates/agent.conf.j2", 15)
    assert str(web.field_locations["template"]) == template


def test_example_sysctl_values_are_text(example: Project) -> None:
    resources = {r.id: r for r in example.desired["lab-02"].resources}
    sysctl = resources["sysctl:net.ipv4.conf.all.send_redirects"].spec
    assert sysctl == Sysctl(key="net.ipv4.conf.all.send_redirects", value="0")


# --- selection and variables --------------------------------------------------------------

SELECTIVE = {
    "policies/all.yml": "name: all\nselect: {all: true}\n",
    "policies/web.yml": "name: web\nselect: {groups: [web]}\n",
    "policies/canary.yml": "name: canary\nselect: {rings: [canary]}\n",
    "policies/one.yml": "name: one\nselect: {hosts: [db-01]}\n",
}


def test_policies_apply_where_their_selector_matches(tmp_path: Path) -> None:
    project = load(tmp_path, SELECTIVE)
    assert {name: state.policies for name, state in project.desired.items()} == {
        "web-01": ("all", "canary", "web"),
        "web-02": ("all", "web"),
        "db-01": ("all", "one"),
    }


def test_selectors_naming_unknown_names_are_errors(tmp_path: Path) -> None:
    text = "name: typo\nselect:\n  groups: [wbe, x]\n  rings: [canry]\n  hosts: [web-1, zzz]\n"
    assert problems(tmp_path, {"policies/typo.yml": text}) == [
        "policies/typo.yml:3:12: error: unknown group 'wbe' (did you mean 'web'?)",
        "policies/typo.yml:3:17: error: unknown group 'x' (known groups: web, db)",
        "policies/typo.yml:4:11: error: unknown ring 'canry' (did you mean 'canary'?)",
        "policies/typo.yml:5:11: error: unknown host 'web-1' (did you mean 'web-01'?)",
        "policies/typo.yml:5:18: error: unknown host 'zzz'",
    ]


VARS_POLICY = """\
name: vars
select: {all: true}
vars:
  tier: policy
  colour: none
  owner: nobody
  only_policy: 1
"""


def test_variables_layer_policy_all_groups_ring_host(tmp_path: Path) -> None:
    project = load(tmp_path, {"policies/vars.yml": VARS_POLICY})
    hosts = "inventory/hosts.yml"

    def where(name: str, host: str) -> tuple[object, SourceLocation]:
        var = project.desired[host].vars[name]
        return var.value, var.location

    # web-01: groups [web, db] (db later wins), ring canary sets tier, host sets owner.
    assert where("tier", "web-01") == ("ring", SourceLocation(hosts, 3, 18))
    assert where("colour", "web-01") == ("green", SourceLocation(hosts, 7, 33))
    assert where("owner", "web-01") == ("alice", SourceLocation(hosts, 11, 78))
    assert where("only_policy", "web-01") == (1, SourceLocation("policies/vars.yml", 7, 16))
    # web-02: groups [db, web] (web wins), ring broad has no vars.
    assert where("tier", "web-02") == ("web", SourceLocation(hosts, 6, 22))
    assert where("colour", "web-02") == ("blue", SourceLocation(hosts, 6, 35))
    assert where("owner", "web-02") == ("nobody", SourceLocation("policies/vars.yml", 6, 10))
    assert list(project.desired["web-02"].vars) == ["colour", "only_policy", "owner", "tier"]


def test_host_targets_carry_ssh_settings_and_port(tmp_path: Path) -> None:
    project = load(tmp_path, {"inventory/ssh.yml": "ssh: {user: admin, port: 2200}\n"})
    assert project.desired["web-01"].host.port == 2200
    assert project.desired["web-02"].host.port == 2222
    assert project.desired["web-02"].host.user == "admin"


def test_policy_defaults_must_agree_unless_the_inventory_decides(tmp_path: Path) -> None:
    files = {
        "policies/a.yml": "name: a\nselect: {all: true}\nvars: {port: 1, tier: x}\n",
        "policies/b.yml": "name: b\nselect: {all: true}\nvars: {port: 2, tier: y}\n",
    }
    never_used = (
        "warning: default of variable 'tier' is never used: the inventory sets it on every host "
        "this policy selects (e.g. at inventory/hosts.yml:3:18 for host web-01); change it "
        "there, or remove this default"
    )
    assert problems(tmp_path, files) == [
        f"policies/a.yml:3:17: {never_used}",
        "policies/b.yml:3:14: error: variable 'port' default 2 conflicts with default 1 set at "
        "policies/a.yml:3:14; set it in the inventory (host web-01)",
        f"policies/b.yml:3:17: {never_used}",
    ]


# --- rendering ----------------------------------------------------------------------------


def test_templates_render_strings_everywhere_and_files(tmp_path: Path) -> None:
    policy = """\
name: render
select: {all: true}
vars: {port: 7070}
files:
  - path: "/etc/{{ host.name }}.conf"
    content: "port={{ port }} ring={{ host.ring }}\\n"
    restart: ["{{ 'svc-' ~ host.groups[0] }}"]
  - path: /etc/from-template
    template: templates/main.j2
"""
    files = {
        "policies/render.yml": policy,
        "templates/main.j2": "{% include 'templates/part.j2' %}tier={{ tier }}\n",
        "templates/part.j2": "host={{ host.name }} at {{ host.address }}\n",
    }
    state = load(tmp_path, files).desired["web-02"]
    inline, template = state.resources
    assert inline.key == "/etc/web-02.conf"
    assert inline.content == "port=7070 ring=broad\n"
    assert isinstance(inline.spec, File)
    assert inline.spec.restart == ("svc-db",)
    assert template.content == "host=web-02 at 10.0.0.2\ntier=web\n"


def test_undefined_variables_are_reported_once_naming_one_host(tmp_path: Path) -> None:
    policy = """\
name: agent
select: {all: true}
files:
  - path: /etc/agent.conf
    template: templates/agent.conf.j2
  - path: /etc/motd
    content: "{{ motd }}"
packages:
  - name: acme-agent
    version: "{{ host.name }}"
"""
    files = {
        "policies/agent.yml": policy,
        "templates/agent.conf.j2": "port = {{ agent_port }}\n",
    }
    assert problems(tmp_path, files) == [
        "policies/agent.yml:5:15: error: template templates/agent.conf.j2: "
        "'agent_port' is undefined (host web-01)",
        "policies/agent.yml:7:14: error: 'motd' is undefined (host web-01)",
        # The value differs per host; the field is reported once, for the first host.
        "policies/agent.yml:10:14: error: 'web-01' is not a Debian version "
        "(like 1.0-2 or 1:2.3-1~deb12u1) (host web-01)",
    ]


def test_template_file_problems(tmp_path: Path) -> None:
    policy = """\
name: t
select: {hosts: [db-01]}
files:
  - {path: /a, template: templates/bad.j2}
  - {path: /b, template: ../outside.j2}
  - {path: /c, template: templates/missing.j2}
  - {path: /d, template: templates/includes.j2}
  - {path: /e, content: "{% if %}"}
  - {path: /f, content: "{{ 1 / 0 }}"}
"""
    files = {
        "policies/t.yml": policy,
        "templates/bad.j2": "line one\n{% for %}\n",
        "templates/includes.j2": "{% include '../etc/passwd' %}\n",
    }
    assert problems(tmp_path, files) == [
        "policies/t.yml:5:26: error: template path '../outside.j2' leaves the repository "
        "('..' is not allowed)",
        "policies/t.yml:6:26: error: template file 'templates/missing.j2' not found",
        "policies/t.yml:7:26: error: template path '../etc/passwd' leaves the repository "
        "('..' is not allowed)",
        "policies/t.yml:8:25: error: invalid template: Expected an expression, "
        "got 'end of statement block'",
        "policies/t.yml:9:25: error: template error: division by zero (host db-01)",
        "templates/bad.j2:2: error: invalid template: Expected an expression, "
        "got 'end of statement block'",
    ]


# --- conflicts ----------------------------------------------------------------------------

A = """\
name: a
select: {all: true}
packages:
  - name: acme-agent
    version: "1.0-2"
  - name: curl
files:
  - path: /etc/motd
    content: "hello\\n"
services:
  - name: nginx
sysctl:
  - {key: net.ipv4.ip_forward, value: 1}
users:
  - {name: acme, shell: /bin/sh}
"""

B = """\
name: b
select: {groups: [web]}
packages:
  - name: curl
  - name: acme-agent
    version: "1.0-3"
files:
  - path: /etc/motd
    template: templates/motd.j2
services:
  - name: nginx
    running: false
sysctl:
  - {key: net.ipv4.ip_forward, value: 0}
users:
  - {name: acme, shell: /usr/sbin/nologin}
"""


def test_conflicting_resources_name_both_locations(tmp_path: Path) -> None:
    files = {"policies/a.yml": A, "policies/b.yml": B, "templates/motd.j2": "bye\n"}
    assert problems(tmp_path, files) == [
        "policies/b.yml:6:14: error: package 'acme-agent' version '1.0-3' conflicts with "
        "version '1.0-2' set at policies/a.yml:5:14",
        "policies/b.yml:9:15: error: file '/etc/motd' content conflicts with the content set at "
        "policies/a.yml:9:14",
        "policies/b.yml:12:14: error: service 'nginx' running false conflicts with running true "
        "(the default) at policies/a.yml:11:5",
        "policies/b.yml:14:39: error: sysctl 'net.ipv4.ip_forward' value '0' conflicts with "
        "value '1' set at policies/a.yml:13:39",
        "policies/b.yml:16:25: error: user 'acme' shell '/usr/sbin/nologin' conflicts with "
        "shell '/bin/sh' set at policies/a.yml:15:25",
    ]


def test_identical_duplicates_merge_and_the_first_is_kept(tmp_path: Path) -> None:
    same = "name: {n}\nselect: {{all: true}}\npackages:\n  - name: curl\n    state: present\n"
    project = load(
        tmp_path, {"policies/a.yml": same.format(n="a"), "policies/b.yml": same.format(n="b")}
    )
    resources = project.desired["db-01"].resources
    assert [(r.id, r.policy, str(r.location)) for r in resources] == [
        ("package:curl", "a", "policies/a.yml:4:5")
    ]


def test_a_pin_below_a_patch_fixed_version_is_an_error(tmp_path: Path) -> None:
    policy = """\
name: p
select: {all: true}
packages:
  - {name: openssl, version: "3.0.11-1~deb12u2"}
  - {name: acme-agent, version: "1.0-10"}
patches:
  - {advisory: DSA-5532-1, package: openssl, fixed: "3.0.11-1~deb12u3"}
  - {advisory: DSA-9001-1, package: acme-agent, fixed: "1.0-9"}
"""
    assert problems(tmp_path, {"policies/p.yml": policy}) == [
        "policies/p.yml:4:30: error: package 'openssl' version '3.0.11-1~deb12u2' is below "
        "version '3.0.11-1~deb12u3' fixed by DSA-5532-1 at policies/p.yml:7:53"
    ]


# --- the whole project --------------------------------------------------------------------


def test_every_problem_of_every_file_is_raised_together(tmp_path: Path) -> None:
    files = {
        "policies/a.yml": "name: a\nselect: {all: true}\npackages: [{name: x, state: gone}]\n",
        "policies/b.yml": "name: b\nselect: {all: true}\nfiles: [{path: /x, content: '{{ y }}'}]\n",
    }
    assert problems(tmp_path, files) == [
        "policies/a.yml:3:29: error: expected 'present', 'absent' or 'latest', got 'gone'",
        "policies/b.yml:3:29: error: 'y' is undefined (host web-01)",
    ]


def test_resolution_waits_for_a_valid_inventory(tmp_path: Path) -> None:
    source = repo(
        tmp_path,
        {
            "inventory/hosts.yml": "hosts:\n  a: {address: x, groups: [web]}\n  b: {}\n",
            "policies/web.yml": "name: web\nselect: {groups: [wbe]}\nbogus: 1\n",
        },
    )
    with pytest.raises(ValidationError) as caught:
        load_project(source)
    assert [str(d) for d in caught.value.diagnostics] == [
        "inventory/hosts.yml:3:6: error: missing required key 'address'",
        "policies/web.yml:3:1: error: unknown key 'bogus' (allowed: name, description, select, "
        "vars, apt_repositories, packages, files, lines, settings, blocks, directories, "
        "services, sysctl, sysctl_file, groups, users, commands, patches, deploy, patch_baseline, "
        "checks, template_options)",
    ]


def test_hosts_without_policies_have_an_empty_state(tmp_path: Path) -> None:
    project = load(tmp_path, {"policies/one.yml": "name: one\nselect: {hosts: [db-01]}\n"})
    assert project.desired["web-01"].resources == ()
    assert project.desired["web-01"].policies == ()
    assert list(project.desired) == ["web-01", "web-02", "db-01"]


# --- explain ------------------------------------------------------------------------------


def test_explain_lists_every_value_with_its_location(example: Project) -> None:
    explanation = explain_host(example, "lab-01")
    rows = {
        (r.resource, r.field): (r.value, str(r.location), r.default) for r in explanation.resources
    }
    agent = "policies/acme-agent.yml"
    assert rows[("package:acme-agent", "version")] == (
        "1.0-2",
        at(agent, "    version:", 14),
        False,
    )
    assert rows[("package:acme-agent", "hold")] == (
        "false",
        at(agent, "- name: acme-agent", 5),
        True,
    )
    assert rows[("file:/etc/acme/agent.conf", "content")] == (
        "# Managed by patchring (policies/acme-agent.yml); local changes are overwritten."
        " ... (5 lines)",
        at(agent, "    template: templates/agent.conf.j2", 15),
        False,
    )
    assert rows[("sysctl:net.ipv4.conf.all.send_redirects", "value")] == (
        "0",
        at("policies/hardening.yml", "    value: 0", 12),
        False,
    )
    variables = {v.name: (v.value, str(v.location)) for v in explanation.vars}
    fleet = "inventory/fleet.yml"
    # lab-01 is in group web, whose log level overrides the global one.
    assert variables["agent_log_level"] == ("warning", at(fleet, "agent_log_level: warning", 24))
    assert variables["agent_port"] == ("7070", at(fleet, "  agent_port: 7070", 15))
    assert variables["lab_apt_key"] == (
        "-----BEGIN PGP PUBLIC KEY BLOCK----- ... (2 lines)",
        "inventory/lab.yml:2:61",
    )
    assert variables["lab_apt_url"] == ("http://10.213.0.1:8080/", "inventory/lab.yml:2:21")


def test_explain_rejects_unknown_hosts(example: Project) -> None:
    with pytest.raises(UnknownHostError) as caught:
        explain_host(example, "lab-1")
    assert caught.value.message == "unknown host 'lab-1' (did you mean 'lab-01'?)"
