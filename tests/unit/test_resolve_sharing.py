"""Work shared between hosts while resolving: the same results as resolving each host alone.

An entry is built once per distinct set of the variables its templates read; a template file
that reads the host renders per host onto a copy of one resource; a host's merge and order
checks are reused for the same structure; commands about some hosts resolve only those; YAML is
composed by libyaml with PyYAML's wording of every error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.errors import ValidationError
from orchestrator.inventory.loader import collect_inventory
from orchestrator.policy import WorktreeSource, load_project, parse_yaml
from orchestrator.policy.loader import collect_policies
from orchestrator.policy.render import RenderError, TemplateRenderer
from orchestrator.policy.resolve import Reporter, resolve_host, resolve_hosts
from orchestrator.policy.yamlsource import _parse

INVENTORY = """\
rings:
  - name: canary
  - name: broad
groups:
  web: {vars: {port: 80}}
  db: {vars: {port: 5432}}
hosts:
  web-01: {address: 10.0.0.1, ring: canary, groups: [web], vars: {serial: 1}}
  web-02: {address: 10.0.0.2, ring: broad, groups: [web], vars: {serial: 2}}
  db-01: {address: 10.0.0.3, ring: broad, groups: [db], vars: {serial: 3, extra: x}}
"""

POLICY = """\
name: app
select: {all: true}
vars: {motd: hello}
packages:
  - name: app
    version: "1.{{ port }}-1"
  - name: tool
files:
  - path: /etc/app/port.conf
    template: templates/port.j2
  - path: /etc/app/host.conf
    template: templates/host.j2
    restart: [app]
  - path: "/etc/app/{{ host.name }}.id"
    content: "{{ serial }}"
services:
  - name: app
    after: [file:/etc/app/port.conf]
"""

TEMPLATES = {
    "templates/port.j2": "port={{ port }} motd={{ motd }}\n",
    "templates/host.j2": "{% set who = host.name %}name={{ who }} serial={{ serial }}\n",
}


def write(tmp_path: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def project_files(**extra: str) -> dict[str, str]:
    return {"inventory/hosts.yml": INVENTORY, "policies/app.yml": POLICY, **TEMPLATES, **extra}


def resource(project_desired: object, host: str, rid: str) -> object:
    state = project_desired[host]  # type: ignore[index]
    return next(r for r in state.resources if r.id == rid)


def test_per_host_templates_render_per_host_and_group_ones_are_shared(tmp_path: Path) -> None:
    desired = load_project(write(tmp_path, project_files())).desired
    host_conf = {h: resource(desired, h, "file:/etc/app/host.conf") for h in desired}
    assert [r.content for r in host_conf.values()] == [  # type: ignore[attr-defined]
        "name=web-01 serial=1\n",
        "name=web-02 serial=2\n",
        "name=db-01 serial=3\n",
    ]
    port = {h: resource(desired, h, "file:/etc/app/port.conf") for h in desired}
    assert port["web-01"] is port["web-02"]  # the same group value: built once
    assert port["db-01"].content == "port=5432 motd=hello\n"  # type: ignore[attr-defined]
    assert port["web-01"].content == "port=80 motd=hello\n"  # type: ignore[attr-defined]
    ids = {h: resource(desired, h, "file:/etc/app/" + h + ".id") for h in desired}
    assert [r.content for r in ids.values()] == ["1", "2", "3"]  # type: ignore[attr-defined]
    assert resource(desired, "web-01", "package:tool") is resource(
        desired, "web-02", "package:tool"
    )


def test_sharing_gives_what_resolving_each_host_alone_gives(tmp_path: Path) -> None:
    source = write(tmp_path, project_files())
    policies, _ = collect_policies(source)
    inventory, _ = collect_inventory(source)
    assert inventory is not None
    shared, problems = resolve_hosts(policies, inventory, TemplateRenderer(source))
    assert problems == []
    for name in inventory.hosts:
        alone = resolve_host(policies, inventory, name, TemplateRenderer(source), Reporter())
        assert shared[name].model_dump() == alone.model_dump()
        # The apply order (after: moves the service) is the same as without sharing.
        assert [r.id for r in shared[name].resources] == [r.id for r in alone.resources]


def test_a_render_error_on_one_host_is_located_and_names_it(tmp_path: Path) -> None:
    # `extra` is set on db-01 only: web-01 and web-02 fail, each entry reported once.
    files = project_files(**{"templates/host.j2": "{{ extra }} {{ host.name }}\n"})
    files["policies/app.yml"] = POLICY.replace('content: "{{ serial }}"', 'content: "{{ extra }}"')
    with pytest.raises(ValidationError) as caught:
        load_project(write(tmp_path, files))
    assert [str(d) for d in caught.value.diagnostics] == [
        "policies/app.yml:12:15: error: template templates/host.j2: 'extra' is undefined "
        "(host web-01)",
        "policies/app.yml:15:14: error: 'extra' is undefined (host web-01)",
    ]


def test_an_error_after_a_shared_success_is_still_found(tmp_path: Path) -> None:
    # The first two hosts share the rendering of port.j2; the third host's value breaks it.
    files = project_files(**{"templates/port.j2": "{{ 100 // (port - 5432) }}\n"})
    with pytest.raises(ValidationError) as caught:
        load_project(write(tmp_path, files))
    assert [str(d) for d in caught.value.diagnostics] == [
        "policies/app.yml:10:15: error: template templates/port.j2: template error: "
        "integer division or modulo by zero (host db-01)",
        "policies/app.yml:18:13: error: after: no resource 'file:/etc/app/port.conf' on this "
        "host (did you mean 'file:/etc/app/host.conf'?) (host db-01)",
    ]


def test_an_included_template_reading_the_host_renders_per_host(tmp_path: Path) -> None:
    files = project_files(
        **{
            "templates/port.j2": "{% include 'templates/inner.j2' %}",
            "templates/inner.j2": "{{ host.name }}:{{ port }}\n",
        }
    )
    desired = load_project(write(tmp_path, files)).desired
    contents = [resource(desired, h, "file:/etc/app/port.conf").content for h in desired]  # type: ignore[attr-defined]
    assert contents == ["web-01:80\n", "web-02:80\n", "db-01:5432\n"]


def test_a_set_in_one_rendering_does_not_leak_into_the_next(tmp_path: Path) -> None:
    renderer = TemplateRenderer(write(tmp_path, {}))
    bound = renderer.bind({"x": 1})
    assert renderer.render_text("{% set x = 2 %}{{ x }}", bound) == "2"
    assert renderer.render_text("{{ x }} {{ range(2) | list }}", bound) == "1 [0, 1]"
    assert dict(bound)["x"] == 1


def test_a_template_cannot_change_a_shared_value_in_place(tmp_path: Path) -> None:
    renderer = TemplateRenderer(write(tmp_path, {}))
    bound = renderer.bind({"items": [1]})
    with pytest.raises(RenderError, match="unsafe"):
        renderer.render_text("{{ items.append(2) }}", bound)
    assert renderer.render_text("{{ items }}", bound) == "[1]"


def test_commands_about_one_host_resolve_only_it(tmp_path: Path) -> None:
    files = project_files()
    files["policies/db.yml"] = (
        "name: db\nselect: {groups: [db]}\npackages: [{name: '{{ nope }}'}]\n"
    )
    source = write(tmp_path, files)
    project = load_project(source, hosts=lambda inventory: ["web-01"])
    assert list(project.desired) == ["web-01"]
    with pytest.raises(ValidationError) as caught:  # the whole fleet still fails on db-01
        load_project(source)
    assert "'nope' is undefined (host db-01)" in str(caught.value.diagnostics[0])
    broken = dict(files, **{"policies/web.yml": "name: web\nselect: {all: true}\nbogus: 1\n"})
    with pytest.raises(ValidationError):  # a file's own errors fail any command
        load_project(write(tmp_path, broken), hosts=lambda inventory: ["web-01"])


YAML_SAMPLE = """\
# a comment
name: "ünïcode: é"
anchors:
  base: &base {mode: "0644", list: [1, 2.5, true, null, ~, 0o17, 2026-01-01]}
  copy: *base
tagged: !secret s3cr3t
text: |
  line one
  línea dos
"""


def test_libyaml_and_pyyaml_give_the_same_values_and_locations() -> None:
    fast = _parse(YAML_SAMPLE, "a.yml", "policy", None, yaml.CSafeLoader)
    pure = _parse(YAML_SAMPLE, "a.yml", "policy", None, yaml.SafeLoader)
    assert (fast.data, fast.values, fast.keys, fast.texts, fast.secrets) == (
        pure.data,
        pure.values,
        pure.keys,
        pure.texts,
        pure.secrets,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: b: c\n", "a.yml:1:5: error: invalid YAML: mapping values are not allowed here"),
        (
            "a: [1, 2\n",
            "a.yml:2:1: error: invalid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence started at line 1)",
        ),
        ("a: *nowhere\n", "a.yml:1:4: error: invalid YAML: found undefined alias 'nowhere'"),
    ],
)
def test_syntax_errors_read_as_pyyaml_words_them(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_yaml(text, "a.yml")
    assert [str(d) for d in caught.value.diagnostics] == [message]
