"""Values that reach a shell, an ssh_config or a host file: hostile ones are refused at load time
with a located error (one test per destination field), what is written is quoted, and templates
cannot exhaust the controller."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import ValidationError
from orchestrator.inventory import collect_inventory
from orchestrator.model.desired import HostTarget
from orchestrator.policy import load_policies
from orchestrator.policy.projectsource import WorktreeSource
from orchestrator.policy.render import RenderError, TemplateRenderer
from orchestrator.rollout.health import fill
from orchestrator.verify.sshlink import SshConfig, SshConfigValueError, ssh_config_value

NEWLINE = "x\nProxyCommand touch /tmp/pwned"
# The attempts every word-like field must refuse: newline, NUL, `;`, `$( )`, backticks and
# option injection (`-oProxyCommand=`, a leading `-`).
WORDS = [
    NEWLINE,
    "x\0y",
    "x;touch /tmp/pwned",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "-oProxyCommand=touch /tmp/pwned",
    "-x",
]
PATHS = ["/etc/x\ny", "/etc/x\0y", "/etc/x;y", "/etc/$(y)", "/etc/`y`", "-oProxyCommand=x"]
PATHS += ["/etc/../shadow", "/etc//x", "/etc/x/"]
LINES = [NEWLINE, "x\0y", "x\ry"]


def write(root: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(root)


def inventory_problems(root: Path, text: str) -> list[str]:
    inventory, found = collect_inventory(write(root, {"inventory/hosts.yml": text}))
    assert inventory is None
    return [str(d) for d in found]


def policy_problems(root: Path, text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_policies(write(root, {"policies/p.yml": text}))
    return [str(d) for d in caught.value.diagnostics]


def located(text: str, value: str, file: str) -> str:
    """`file:line:col: error: '<value>` for the JSON-quoted `value` in `text`."""
    quoted = json.dumps(value)
    for number, line in enumerate(text.splitlines(), start=1):
        if quoted in line:
            return f"{file}:{number}:{line.index(quoted) + 1}: error: "
    raise AssertionError(f"{quoted} not in the document")


# --- inventory fields -------------------------------------------------------------------------

INVENTORY_FIELDS = {
    "address": "hosts:\n  web1: {address: VALUE}\n",
    "ssh.user": "ssh: {user: VALUE}\nhosts:\n  web1: {address: 10.0.0.1}\n",
    "ssh.identity_file": "ssh: {identity_file: VALUE}\nhosts:\n  web1: {address: 10.0.0.1}\n",
    "ssh.known_hosts": "ssh: {known_hosts: VALUE}\nhosts:\n  web1: {address: 10.0.0.1}\n",
    "host ring": "hosts:\n  web1: {address: 10.0.0.1, ring: VALUE}\n",
    "host groups": "hosts:\n  web1: {address: 10.0.0.1, groups: [VALUE]}\n",
    "ring name": "rings:\n  - {name: VALUE}\nhosts:\n  web1: {address: 10.0.0.1}\n",
    "host name": "hosts:\n  VALUE: {address: 10.0.0.1}\n",
    "group name": "groups:\n  VALUE: {vars: {a: 1}}\nhosts:\n  web1: {address: 10.0.0.1}\n",
}


@pytest.mark.parametrize("field", INVENTORY_FIELDS)
@pytest.mark.parametrize("value", WORDS)
def test_inventory_fields_refuse_injection_with_a_located_error(
    tmp_path: Path, field: str, value: str
) -> None:
    text = INVENTORY_FIELDS[field].replace("VALUE", json.dumps(value))
    found = inventory_problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(located(text, value, "inventory/hosts.yml"))
    assert "\n" not in found[0] and "\0" not in found[0]


def test_an_address_with_proxycommand_is_refused_verbatim(tmp_path: Path) -> None:
    text = f"hosts:\n  web1: {{address: {json.dumps(NEWLINE)}}}\n"
    assert inventory_problems(tmp_path, text) == [
        "inventory/hosts.yml:2:19: error: 'x\\nProxyCommand touch /tmp/pwned' is not an IP "
        "address or a DNS name: it contains a newline"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hosts:\n  web1: {address: 10.0.0.1, port: 0}\n", "2:35: error: must be greater than"),
        ("hosts:\n  web1: {address: 10.0.0.1, port: 65536}\n", "2:35: error: must be less than"),
        ("ssh: {port: 70000}\nhosts:\n  web1: {address: 10.0.0.1}\n", "1:13: error: must be"),
        ("hosts:\n  web1: {address: 300.1.1.1}\n", "2:19: error: '300.1.1.1' is not an IP"),
        ("hosts:\n  web1: {address: 'fe80::1%eth0'}\n", "2:19: error: 'fe80::1%eth0' is an IPv6"),
        ("hosts:\n  web1: {address: 'a b'}\n", "2:19: error: 'a b' is not an IP address"),
        ("hosts:\n  web1: {address: a..b}\n", "2:19: error: 'a..b' is not an IP address"),
    ],
)
def test_ports_and_addresses_are_checked(tmp_path: Path, text: str, message: str) -> None:
    found = inventory_problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith("inventory/hosts.yml:" + message), found


def test_valid_addresses_and_names_load(tmp_path: Path) -> None:
    text = (
        "ssh: {user: deploy.bot, identity_file: keys/id-ed25519, port: 2222}\n"
        "rings:\n  - {name: canary_1}\n"
        "hosts:\n"
        "  web1.example.org: {address: web1.example.org, ring: canary_1, groups: [web-eu]}\n"
        "  db-2: {address: '2001:db8::2', port: 65535}\n"
        "  c3: {address: 10.0.0.3}\n"
    )
    inventory, found = collect_inventory(write(tmp_path, {"inventory/hosts.yml": text}))
    assert found == [] and inventory is not None
    assert [h.address for h in inventory.hosts.values()] == [
        "web1.example.org",
        "2001:db8::2",
        "10.0.0.3",
    ]


# --- policy fields ----------------------------------------------------------------------------

POLICY_FIELDS = {
    "package name": ("packages", "{name: VALUE}", WORDS),
    "patch package": ("patches", "{advisory: A-1, package: VALUE, fixed: '1.0'}", WORDS),
    "service name": ("services", "{name: VALUE}", WORDS),
    "file restart": ("files", "{path: /etc/a, content: x, restart: [VALUE]}", WORDS),
    "file owner": ("files", "{path: /etc/a, content: x, owner: VALUE}", WORDS),
    "file group": ("files", "{path: /etc/a, content: x, group: VALUE}", WORDS),
    "directory owner": ("directories", "{path: /etc/a, owner: VALUE}", WORDS),
    "user group": ("users", "{name: acme, group: VALUE}", WORDS),
    "user groups": ("users", "{name: acme, groups: [VALUE]}", WORDS),
    "apt url": ("apt_repositories", "{name: r, url: VALUE, suite: s, key: k}", WORDS),
    "apt suite": ("apt_repositories", "{name: r, url: 'http://x', suite: VALUE, key: k}", WORDS),
    "apt component": (
        "apt_repositories",
        "{name: r, url: 'http://x', suite: s, components: [VALUE], key: k}",
        WORDS,
    ),
    "sysctl value": ("sysctl", "{key: net.ipv4.ip_forward, value: VALUE}", WORDS[:5]),
    "file path": ("files", "{path: VALUE, content: x}", PATHS),
    "directory path": ("directories", "{path: VALUE}", PATHS),
    "user home": ("users", "{name: acme, home: VALUE}", PATHS),
    "user shell": ("users", "{name: acme, shell: VALUE}", PATHS),
    "command creates": ("commands", "{name: c, run: 'true', creates: VALUE}", PATHS),
    "command name": ("commands", "{name: VALUE, run: 'true', creates: /x}", LINES),
    "patch advisory": ("patches", "{advisory: VALUE, package: p, fixed: '1.0'}", LINES),
    "deploy name": ("deploy", "{name: VALUE, use: 'motd:configure_motd'}", LINES),
    "file template": ("files", "{path: /etc/a, template: VALUE}", LINES),
}
POLICY_CASES = [
    (field, value) for field, (_, _, values) in POLICY_FIELDS.items() for value in values
]


@pytest.mark.parametrize(("field", "value"), POLICY_CASES)
def test_policy_fields_refuse_injection_with_a_located_error(
    tmp_path: Path, field: str, value: str
) -> None:
    section, entry, _ = POLICY_FIELDS[field]
    text = (
        f"name: p\nselect: {{all: true}}\n{section}:\n  - "
        + entry.replace("VALUE", json.dumps(value))
        + "\n"
    )
    found = policy_problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(located(text, value, "policies/p.yml"))
    assert "\n" not in found[0] and "\0" not in found[0]


def test_minor_items_of_the_issue_are_refused_verbatim(tmp_path: Path) -> None:
    text = (
        "name: p\nselect: {all: true}\nfiles:\n"
        '  - {path: "/etc/../x", content: a}\n'
        '  - {path: "/", content: b}\n'
        '  - {path: "/etc/a\\0b", content: b}\n'
        "sysctl:\n"
        '  - {key: net.ipv4.ip_forward, value: "1; touch /tmp/pwned"}\n'
    )
    assert policy_problems(tmp_path, text) == [
        "policies/p.yml:4:12: error: '/etc/../x' is not a normal path "
        "(no '..', '.', '//' or trailing '/')",
        "policies/p.yml:5:12: error: '/' is the root directory itself; "
        "name a file or directory below it",
        "policies/p.yml:6:12: error: '/etc/a\\x00b' contains a NUL character",
        "policies/p.yml:8:39: error: '1; touch /tmp/pwned' is not a sysctl value (letters, "
        "digits, spaces and . _ + , : = / % | @ -; no ; $ ` quotes or newlines)",
    ]


def test_legitimate_values_still_load(tmp_path: Path) -> None:
    text = (
        "name: p\nselect: {all: true}\n"
        "packages: [{name: libc6}, {name: g++-12}, {name: acme-agent}]\n"
        "services: [{name: getty@tty1}, {name: systemd-resolved.service}]\n"
        "sysctl:\n"
        "  - {key: kernel.perf_event_paranoid, value: -1}\n"
        "  - {key: net.ipv4.tcp_rmem, value: 4096 87380 6291456}\n"
        "  - {key: kernel.core_pattern, value: '|/usr/lib/systemd/systemd-coredump %P %u'}\n"
        "files: [{path: /etc/nginx/sites-available/example.com, content: x, owner: www-data}]\n"
        "apt_repositories:\n"
        "  - {name: sec, url: 'http://security.debian.org/debian-security', "
        "suite: bookworm-security, components: [main, non-free-firmware], key: k}\n"
    )
    (policy,) = load_policies(write(tmp_path, {"policies/p.yml": text}))
    assert [s.value for s in policy.document.sysctl][:2] == ["-1", "4096 87380 6291456"]


# --- templated values are checked once rendered -----------------------------------------------


def test_a_templated_path_is_checked_after_rendering(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "inventory/hosts.yml": "hosts:\n  web1: {address: 10.0.0.1, vars: {evil: 'a\\nb'}}\n",
            "policies/p.yml": "name: p\nselect: {all: true}\n"
            "files: [{path: '/etc/{{ evil }}', content: x}, {path: '/etc/{{ \"ok\" }}', "
            "content: y}]\nusers: [{name: acme, shell: '{{ \"/bin/sh;id\" }}'}]\n",
        },
    )
    assert main(["validate", "--repo", str(tmp_path)]) == 1


def test_templated_values_report_the_rendered_value_at_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "inventory/hosts.yml": 'hosts:\n  web1: {address: 10.0.0.1, vars: {evil: "a\\nb"}}\n',
            "policies/p.yml": "name: p\nselect: {all: true}\n"
            "files: [{path: '/etc/{{ evil }}', content: x}]\n",
        },
    )
    assert main(["validate", "--repo", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "policies/p.yml:3:16: error: '/etc/a\\nb' contains a newline (host web1)",
        "patchring: 1 error found; nothing was changed",
    ]


# --- destinations: ssh_config and shell -------------------------------------------------------


def _target(**fields: object) -> HostTarget:
    return HostTarget.model_validate({"name": "web1", "address": "10.0.0.1", **fields})


def test_ssh_config_values_are_quoted_by_openssh_rules() -> None:
    assert ssh_config_value("/keys/id") == '"/keys/id"'
    assert ssh_config_value('/a "b" \\c %h', tokens=True) == '"/a \\"b\\" \\\\c %%h"'
    for value in ("a\nProxyCommand x", "a\0b", "a\rb", "a\tb", "${HOME}/id"):
        with pytest.raises(SshConfigValueError):
            ssh_config_value(value)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_openssh_reads_the_written_config_back_exactly(tmp_path: Path) -> None:
    key = tmp_path / 'we "ird" %h #key'
    target = _target(user="deploy", port=2222, identity_file=str(key))
    config = SshConfig.write([target], tmp_path)
    said = subprocess.run(
        ["ssh", "-G", "-F", str(config.path), "--", "10.0.0.1"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout.splitlines()
    assert "hostname 10.0.0.1" in said and "user deploy" in said and "port 2222" in said
    # -G prints the value as stored: `%%` is read as `%` when the key is loaded
    assert "identityfile " + str(key).replace("%", "%%") in said
    assert not any(line.startswith("proxycommand") for line in said)


@pytest.mark.parametrize(
    "fields",
    [
        {"address": NEWLINE},
        {"address": "-oProxyCommand=touch"},
        {"user": "root\nProxyCommand touch /tmp/pwned"},
        {"identity_file": "/id\nProxyCommand touch /tmp/pwned"},
        {"known_hosts": "${HOME}/kh"},
    ],
)
def test_the_ssh_config_refuses_what_no_quoting_can_carry(
    tmp_path: Path, fields: dict[str, str]
) -> None:
    with pytest.raises(SshConfigValueError):
        SshConfig.write([_target(**fields)], tmp_path)


def test_health_commands_get_the_host_quoted_for_the_shell() -> None:
    target = _target(name="a;touch /tmp/pwned", address="$(id)")
    command = fill("ping -c1 {{ host.address }} && echo {{host.name}}", target)
    assert command == "ping -c1 '$(id)' && echo 'a;touch /tmp/pwned'"
    assert fill("echo {{ host.name }}", _target()) == "echo web1"


# --- resource exhaustion ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' * 10**9 }}", "repeating a value would exceed the limit of 1,000,000 characters"),
        ("{{ [0] * 10**9 }}", "repeating a value would exceed"),
        ("{{ 10 ** 100000 }}", "a power of more than 4096 bits is refused"),
        ("{{ 'x'|center(10**9) }}", "an argument of 1000000000 would exceed"),
        ("{{ 'x'.ljust(10**9) }}", "an argument of 1000000000 would exceed"),
        ("{{ '%1000000000s' % 'x' }}", "a format width of 1000000000 would exceed"),
        ("{{ '{:>1000000000}'.format('x') }}", "a format width of 1000000000 would exceed"),
        ("{{ ('x' * 100000)|replace('', 'y' * 10) }}", "replacing text would exceed"),
        ("{{ range(100000)|join('x' * 100) }}", "joining items would exceed"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "joining text would exceed",
        ),
        (
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "the template takes more than 200,000 steps",
        ),
        (
            "{% macro m() %}{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}{% endmacro %}"
            "{{ m() }}",
            "the template builds more than 20,000,000 characters",
        ),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "template recursion too deep"),
        ("{% for i in range(20) %}{{ 'x' * 100000 }}{% endfor %}", "the rendered output would"),
        ("{{ lipsum(100000) }}", "'lipsum' is undefined"),
    ],
)
def test_rendering_is_bounded(tmp_path: Path, template: str, message: str) -> None:
    renderer = TemplateRenderer(WorktreeSource(tmp_path))
    with pytest.raises(RenderError) as caught:
        renderer.render_text(template, {})
    assert caught.value.message.startswith(message), caught.value.message


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    renderer = TemplateRenderer(WorktreeSource(tmp_path))
    text = "{{ 'ab' ~ 'cd' }} {{ 2 ** 10 }} {{ 'a%5sb' % 'x' }} {{ [1, 2]|join(',') }}"
    assert renderer.render_text(text, {}) == "abcd 1024 a    xb 1,2"
    assert renderer.render_text("{% for i in range(3) %}{{ i * 2 }}{% endfor %}", {}) == "024"


def test_a_huge_template_in_a_policy_is_a_located_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "inventory/hosts.yml": "hosts:\n  web1: {address: 10.0.0.1}\n",
            "policies/p.yml": "name: p\nselect: {all: true}\n"
            "files: [{path: /etc/a, template: t.j2}]\n",
            "t.j2": "{{ 'x' * 10**9 }}\n",
        },
    )
    assert main(["validate", "--repo", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "policies/p.yml:3:34: error: template t.j2: repeating a value would exceed the limit "
        "of 1,000,000 characters (host web1)"
    )


def test_integers_beyond_python_conversion_are_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "inventory/hosts.yml": "hosts:\n  web1: {address: 10.0.0.1}\n",
            "policies/p.yml": "name: p\nselect: {all: true}\nvars:\n  n: " + "9" * 5000 + "\n"
            "  h: 0x" + "f" * 5000 + "\n",
        },
    )
    assert main(["validate", "--repo", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "policies/p.yml:4:6: error: number too large (more than 300 digits)",
        "policies/p.yml:5:6: error: number too large (more than 300 digits)",
        "patchring: 2 errors found; nothing was changed",
    ]


def test_deep_nesting_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 200 + "]" * 200
    write(tmp_path, {"inventory/hosts.yml": f"hosts: {{}}\nvars: {{a: {deep}}}\n"})
    assert main(["validate", "--repo", str(tmp_path)]) == 1
    assert "error: document nested too deeply" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["template", "check", "inventory"])
def test_a_fifo_is_refused_instead_of_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    write(
        tmp_path,
        {
            "inventory/hosts.yml": "hosts:\n  web1: {address: 10.0.0.1}\n",
            "policies/p.yml": "name: p\nselect: {all: true}\n"
            + (
                "files: [{path: /etc/a, template: t.j2}]\n"
                if kind == "template"
                else "checks: [test_x.py]\n"
                if kind == "check"
                else ""
            ),
        },
    )
    fifo = {"template": "t.j2", "check": "test_x.py", "inventory": "inventory/fifo.yml"}[kind]
    os.mkfifo(tmp_path / fifo)
    argv = ["validate", "--repo", str(tmp_path)]
    argv += ["-i", "inventory/fifo.yml"] if kind == "inventory" else []
    assert main(argv) == 1  # a blocking read would hang here
    assert "not a regular file (a FIFO)" in capsys.readouterr().err
