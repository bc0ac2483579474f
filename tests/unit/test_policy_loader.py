"""Policy loading: schema errors mapped to file:line:col in plain words, pinned verbatim."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ValidationError
from orchestrator.model.policy import Package
from orchestrator.policy.loader import collect_policies, load_policies
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.policy.schema import inventory_json_schema, policy_json_schema
from orchestrator.source import SourceLocation


def repo(tmp_path: Path, files: Mapping[str, str | bytes]) -> WorktreeSource:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def problems(tmp_path: Path, files: Mapping[str, str | bytes]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_policies(repo(tmp_path, files))
    return [str(d) for d in caught.value.diagnostics]


GOOD = """\
name: web
description: The web tier.
select:
  groups: [web]
vars:
  nginx_port: 80
packages:
  - name: nginx
    version: "1.22.1-9"
    hold: true
"""


def test_valid_policies_load_in_file_order_with_locations(tmp_path: Path) -> None:
    source = repo(
        tmp_path,
        {
            "policies/web.yml": GOOD,
            "policies/a/base.yaml": "name: base\nselect: {all: true}\n",
            "policies/README.md": "not a policy",
        },
    )
    policies = load_policies(source)
    assert [(p.file, p.name) for p in policies] == [
        ("policies/a/base.yaml", "base"),
        ("policies/web.yml", "web"),
    ]
    web = policies[1]
    assert web.document.packages == (Package(name="nginx", version="1.22.1-9", hold=True),)
    assert web.document.select.groups == ("web",)
    assert web.yaml.value_location(("packages", 0, "version")) == SourceLocation(
        "policies/web.yml", 9, 14
    )


def test_no_policy_folder_means_no_policies(tmp_path: Path) -> None:
    assert load_policies(repo(tmp_path, {})) == ()


BAD = """\
name: web
select:
  all: maybe
packages:
  - name: nginx
    verison: "1.0"
  - name: curl
    state: installd
  - nme: x
  - "just a string"
  - name: bad name
    version: 1.10
  - name: ok
    state: absent
    hold: true
files:
  - path: etc/x
    content: "a"
    mode: 0640
  - path: /etc/y
services: nginx
users:
  - name: Acme
    uid: abc
sysctl:
  - key: foo
    value: [1]
deploy:
  - name: d
    use: nope
commands:
  - name: c
    run: "true"
patches:
  - advisory: DSA-1
    package: nginx
    fixed: latest
    colour: red
"""


def test_schema_errors_are_located_and_worded(tmp_path: Path) -> None:
    assert problems(tmp_path, {"policies/web.yml": BAD}) == [
        "policies/web.yml:3:8: error: 'maybe' is not a boolean",
        "policies/web.yml:6:5: error: unknown key 'verison' (did you mean 'version'?)",
        "policies/web.yml:8:12: error: expected 'present', 'absent' or 'latest', got 'installd'",
        "policies/web.yml:9:5: error: missing required key 'name'",
        "policies/web.yml:9:5: error: unknown key 'nme' (did you mean 'name'?)",
        "policies/web.yml:10:5: error: expected a mapping, got a string",
        "policies/web.yml:11:11: error: 'bad name' is not a Debian package name "
        "(lowercase letters, digits, + . -; starting with a letter or digit)",
        'policies/web.yml:12:14: error: expected a string, got a number (quote it: "1.10")',
        "policies/web.yml:13:5: error: an absent package cannot be held",
        "policies/web.yml:17:11: error: 'etc/x' is not an absolute path",
        'policies/web.yml:19:11: error: expected a string, got a number (quote it: "0640")',
        "policies/web.yml:20:5: error: set exactly one of content, template or source",
        "policies/web.yml:21:11: error: expected a list, got a string",
        "policies/web.yml:23:11: error: 'Acme' is not a valid user name "
        "(lowercase letters, digits, _ and -)",
        "policies/web.yml:24:10: error: 'abc' is not an integer",
        "policies/web.yml:26:10: error: 'foo' is not a sysctl key (like net.ipv4.ip_forward)",
        "policies/web.yml:27:12: error: expected a string, got a list",
        "policies/web.yml:30:10: error: 'nope' is not module:function",
        "policies/web.yml:32:5: error: a command must say how it is idempotent: "
        "set creates or unless",
        "policies/web.yml:37:12: error: 'latest' is not a Debian version "
        "(like 1.0-2 or 1:2.3-1~deb12u1)",
        "policies/web.yml:38:5: error: unknown key 'colour' "
        "(allowed: advisory, cves, package, fixed, description, after)",
    ]


def test_top_level_problems(tmp_path: Path) -> None:
    files = {
        "policies/a.yml": "description: no name\nselect: {}\nwat: 1\n",
        "policies/b.yml": "- a list\n",
        "policies/c.yml": "name: c\nselect: {all: true}\npackages:\n",
        "policies/d.yml": "name: d\nselect: {al: true}\n",
    }
    assert problems(tmp_path, files) == [
        "policies/a.yml:1:1: error: missing required key 'name'",
        "policies/a.yml:2:9: error: selects no host: set all: true, or groups, rings or hosts",
        "policies/a.yml:3:1: error: unknown key 'wat' (allowed: name, description, select, vars, "
        "apt_repositories, packages, files, lines, settings, blocks, directories, services, "
        "sysctl, sysctl_file, groups, users, commands, patches, deploy, patch_baseline, checks, "
        "template_options)",
        "policies/b.yml:1:1: error: expected a mapping, got a list",
        "policies/c.yml:3:10: error: expected a list, got an empty value",
        "policies/d.yml:2:10: error: unknown key 'al' (did you mean 'all'?)",
    ]


def test_every_file_is_checked_and_errors_are_sorted(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "policies/z.yml": (
            "name: z\nselect: {all: true}\nservices: [{name: s, running: sometimes}]\n"
        ),
        "policies/a.yml": "name: a\nname: b\n",
        "policies/m.yml": "",
        "policies/bin.yml": b"name: \xff\xfe\n",
        "policies/ok.yml": "name: ok\nselect: {all: true}\n",
    }
    assert problems(tmp_path, files) == [
        "policies/a.yml:2:1: error: duplicate key 'name' (first at line 1)",
        "policies/bin.yml: error: not a UTF-8 text file",
        "policies/m.yml:1:1: error: empty policy file",
        "policies/z.yml:3:31: error: 'sometimes' is not a boolean",
    ]


def test_valid_files_load_even_when_others_fail(tmp_path: Path) -> None:
    source = repo(tmp_path, {"policies/a.yml": "name: a\n", "policies/b.yml": GOOD})
    policies, found = collect_policies(source)
    assert [p.name for p in policies] == ["web"]
    assert [str(d) for d in found] == ["policies/a.yml:1:1: error: missing required key 'select'"]


def test_duplicate_policy_names_name_both_files(tmp_path: Path) -> None:
    files = {
        "policies/a.yml": "name: web\nselect: {all: true}\n",
        "policies/b.yml": "# the same name again\nname: web\nselect: {all: true}\n",
    }
    assert problems(tmp_path, files) == [
        "policies/b.yml:2:7: error: duplicate policy name 'web' (first used at policies/a.yml:1:7)"
    ]


def test_variable_names_must_be_usable_in_templates(tmp_path: Path) -> None:
    text = "name: v\nselect: {all: true}\nvars:\n  agent-port: 1\n  host: x\n  ok_name: 2\n"
    assert problems(tmp_path, {"policies/v.yml": text}) == [
        "policies/v.yml:4:3: error: variable name 'agent-port' is not usable in templates "
        "(use letters, digits and _)",
        "policies/v.yml:5:3: warning: variable 'host' is shadowed by the built-in 'host' "
        "(host.name, host.address, host.ring, host.groups), which templates see; "
        "choose another name",
    ]


def test_validation_error_counts_its_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        load_policies(repo(tmp_path, {"policies/a.yml": "", "policies/b.yml": ""}))
    assert caught.value.message == "2 errors found"


def test_policy_json_schema_is_generated_from_the_model() -> None:
    schema = policy_json_schema()
    assert next(iter(schema)) == "$schema"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "patchring policy"
    assert schema["required"] == ["name", "select"]
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Package"]["properties"]["state"]["enum"] == [
        "present",
        "absent",
        "latest",
    ]
    assert inventory_json_schema()["title"] == "patchring inventory"


@pytest.mark.parametrize(
    "policy", sorted(p.name for p in (Path(__file__).parents[2] / "policies").glob("*.yml"))
)
def test_the_schema_editors_get_accepts_every_example_policy(
    policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jsonschema import Draft202012Validator

    from orchestrator.cli.main import main

    assert main(["schema"]) == 0
    validator = Draft202012Validator(json.loads(capsys.readouterr().out))
    document = yaml.safe_load((Path(__file__).parents[2] / "policies" / policy).read_text())
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)] == []
