"""Property-based fuzzing of policy, inventory and template files (hypothesis).

Hostile documents (random structure near the schema, hostile strings, huge integers, deep
nesting, YAML tags, anchors and alias bombs, invalid UTF-8, hostile Jinja2) are written into a
temporary policy repository and given to the commands that never touch a host (`validate`,
`explain`, `schema`), in-process. Whatever the input, the exit code is 0 or 1, stderr holds no
traceback and no "internal error", and each example finishes within the hypothesis deadline.
Profiles: `ci` (the default, 200 examples) and `long` (PATCHRING_FUZZ_PROFILE=long); no example
database is kept.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli.main import main

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=5000)
PROFILE = settings.get_profile(os.environ.get("PATCHRING_FUZZ_PROFILE", "ci"))

HOSTILE = [
    "x\nProxyCommand touch /tmp/pwned",
    "a\0b",
    "; touch /tmp/pwned",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "-oProxyCommand=touch /tmp/pwned",
    "-x",
    "/",
    "/etc/../shadow",
    "../../etc/passwd",
    "/etc/x\ny",
    "${HOME}",
    "%h%%",
    '"quoted"',
    "'",
    "\\",
    "\t",
    "\r\n",
    "\u202e\u0000\ufeff",
    "ünïcødé-名前",
    "\U0001f600",
    "{{ 'x' * 10**9 }}",
    "{{ 10 ** 10 ** 10 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ host.name }}",
    "{{ undefined_var }}",
    "{% include 'policies/p.yml' %}",
    "{{ ''.__class__.__mro__ }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "x" * 5000,
    "10.0.0.1",
    "web1",
    "0644",
    "1.0-2",
    "/etc/ok",
    "net.ipv4.ip_forward",
    "acme-agent",
    "templates/t.j2",
    "checks/test_x.py",
]
KEYS = [
    "name", "select", "all", "groups", "rings", "hosts", "vars", "files", "path", "content",
    "template", "owner", "group", "mode", "restart", "packages", "version", "state", "hold",
    "services", "sysctl", "key", "value", "users", "uid", "home", "shell", "commands", "run",
    "creates", "unless", "patches", "advisory", "package", "fixed", "cves", "directories",
    "apt_repositories", "url", "suite", "components", "deploy", "use", "args", "checks",
    "address", "port", "ring", "ssh", "user", "identity_file", "known_hosts", "batches",
    "gate", "health_checks", "command", "http", "windows", "start", "end", "timezone",
    "failure_budget", "max_failed", "soak", "<<", "!!python", "x\ny", "",
]  # fmt: skip

strings = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 65536, 2**64, 10**400]),
)
scalars = st.one_of(strings, integers, st.floats(), st.booleans(), st.none())
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), inner, max_size=5),
    ),
    max_leaves=30,
)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """Documents close to the policy schema, so validation goes past the first level."""
    doc: dict[str, Any] = {"name": draw(strings | st.just("p")), "select": {"all": True}}
    entry = st.dictionaries(st.sampled_from(KEYS), scalars | trees, max_size=6)
    for section in draw(st.lists(st.sampled_from(KEYS[:45]), max_size=4)):
        doc[section] = draw(st.lists(entry, max_size=3) | trees)
    return doc


@st.composite
def inventories(draw: st.DrawFn) -> dict[str, Any]:
    host = st.dictionaries(st.sampled_from(KEYS[44:]), scalars | trees, max_size=4)
    hosts = draw(st.dictionaries(strings | st.just("web1"), host, max_size=3))
    doc: dict[str, Any] = {"hosts": hosts or {"web1": {"address": "10.0.0.1"}}}
    if draw(st.booleans()):
        doc["ssh"] = draw(st.dictionaries(st.sampled_from(KEYS[47:52]), scalars, max_size=3))
    if draw(st.booleans()):
        doc["rings"] = draw(st.lists(st.dictionaries(st.sampled_from(KEYS), trees), max_size=2))
    return doc


RAW_YAML = [
    # a billion laughs: aliases that expand to far more values than the document holds
    "a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "name: p\nselect: {all: true}\nvars: {g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}\n",
    "name: !!python/object/apply:os.system ['touch /tmp/pwned']\nselect: {all: true}\n",
    "name: p\nselect: &s {all: true}\n<<: *s\n",
    "a: &a [*a]\n",
    "name: p\nselect: {all: true}\nvars: {n: " + "9" * 5000 + "}\n",
    "name: p\nselect: {all: true}\nvars: {n: " + "[" * 300 + "]" * 300 + "}\n",
    "name: p\nselect: {all: true}\nvars: {n: 0x" + "f" * 6000 + "}\n",
    "name: p\n\tselect: {all: true}\n",
    "--- a\n--- b\n",
    "%YAML 1.1\n%TAG ! tag:evil.org,2002:\n--- !evil {}\n",
    "? [a, b]\n: c\n",
    "name: p\nselect: {all: true}\nfiles:\n  - {path: /etc/a, template: /etc/passwd}\n",
]
known_attacks = st.sampled_from(RAW_YAML).map(str.encode)
raw_bytes = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"\xff\xfe\x00", b"name: \xc3\x28\n", b"name: p\x00\n", b"\xef\xbb\xbf"]),
)


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True, default_flow_style=None).encode("utf-8")


def documents(structured: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A third each: structured documents, known attacks, random bytes."""
    return st.one_of(structured.map(_dump), known_attacks, raw_bytes)


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _check_commands(root: Path) -> None:
    for argv in (["validate"], ["explain", "web1", "--json"]):
        code, err = _run([*argv, "--repo", str(root)])
        assert code in (0, 1), (argv, code, err)
        assert "Traceback" not in err and "internal error" not in err, err


@PROFILE
@given(
    policy=documents(policies()),
    inventory=documents(inventories()),
    template=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=200)),
)
def test_hostile_files_are_exit_0_or_1_without_a_traceback(
    policy: bytes, inventory: bytes, template: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for sub in ("policies", "inventory", "templates", "checks"):
            (root / sub).mkdir()
        (root / "policies" / "p.yml").write_bytes(policy)
        (root / "inventory" / "hosts.yml").write_bytes(inventory)
        (root / "templates" / "t.j2").write_text(template, encoding="utf-8", errors="replace")
        (root / "checks" / "test_x.py").write_text("def test_x(host):\n    pass\n")
        (root / "policies" / "f.yml").write_text(
            "name: f\nselect: {all: true}\nfiles: [{path: /etc/f, template: templates/t.j2}]\n"
        )
        _check_commands(root)


def test_the_schema_command_is_exit_0() -> None:
    assert _run(["schema"])[0] == 0
