"""The engine's fact cache: which facts operations are predicted to read, what an operation may
change, a batch of facts read in one command (run here with the local `sh`, against files in a
temporary folder) giving exactly what pyinfra's own fact classes give for each fact read alone,
and a cache that serves facts until an operation may have changed them."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pyinfra.api.command import StringCommand
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, FindInFile, Sha256File
from pyinfra.facts.server import Date, Groups, Os, Sysctl, TmpDir, Users, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from orchestrator.compiler import compile_host
from orchestrator.compiler.opspec import OpSpec
from orchestrator.engine.facts import (
    FactCache,
    FactRequest,
    batch_command,
    effect_of,
    fact_key,
    fact_subjects,
    parse_batch,
    predicted_facts,
    touches,
)
from orchestrator.source import SourceLocation
from tests.unit.builders import reference_state

RECORD = (
    "mkdir -p /var/lib/patchring/pending-restarts && touch /var/lib/patchring/pending-restarts/a"
)
WHERE = SourceLocation(file="policies/x.yml", line=1, col=1)


def _recorded() -> OpSpec:
    spec = _spec("server.shell", ("restart:a.service",), commands=[RECORD])
    return spec.model_copy(update={"effect": ("/var/lib/patchring/pending-restarts",)})


def _edited(path: str) -> OpSpec:
    spec = _spec("server.shell", (f"line:{path}",), commands=["..."])
    return spec.model_copy(update={"effect": (path,)})


def _spec(operation: str, resource_ids: tuple[str, ...] = ("file:/x",), **args: Any) -> OpSpec:
    return OpSpec(
        operation=operation,
        args=args,
        resource_ids=resource_ids,
        policy="x",
        location=WHERE,
        description=operation,
    )


def _keys(requests: Sequence[FactRequest]) -> set[str]:
    return {f"{cls.name} {sorted(kwargs.items())}" for cls, kwargs in requests}


def test_predicted_facts_of_each_operation_kind() -> None:
    specs = [
        _spec("files.put", dest="/etc/acme/agent.conf"),
        _spec("files.directory", path="/var/lib/acme"),
        _spec("server.user", user="acme", home="/var/lib/acme"),
        _spec(
            "server.sysctl",
            key="net.ipv4.ip_forward",
            value="0",
            persist=True,
            persist_file="/etc/sysctl.d/90-patchring.conf",
        ),
        _spec("apt.packages", packages=["acme-agent"]),
        _spec("systemd.service", service="acme-agent.service"),
        _spec("server.shell", commands=["true"]),
    ]
    assert _keys(predicted_facts(specs)) == {
        "files.File [('path', '/etc/acme/agent.conf')]",
        "files.Sha256File [('path', '/etc/acme/agent.conf')]",
        "files.Directory [('path', '/etc/acme/agent.conf')]",
        "files.Directory [('path', '/etc/acme')]",
        "files.Directory [('path', '/var/lib/acme')]",
        "server.Users []",
        "server.Groups []",
        "server.Os []",
        "server.Which [('command', 'useradd')]",
        "server.Sysctl [('keys', ['net.ipv4.ip_forward'])]",
        "files.FindInFile [('path', '/etc/sysctl.d/90-patchring.conf'), "
        "('pattern', '^.*net.ipv4.ip_forward[[:space:]]*=[[:space:]]*0.*$')]",
        "files.FindInFile [('path', '/etc/sysctl.d/90-patchring.conf'), "
        "('pattern', '^net.ipv4.ip_forward = 0$')]",
        "server.TmpDir []",
        "deb.DebPackages []",
        "systemd.SystemdStatus [('services', ['acme-agent.service'])]",
        "systemd.SystemdEnabled [('services', ['acme-agent.service'])]",
    }


def test_every_compiled_operation_of_the_reference_state_is_predicted_or_read_alone() -> None:
    # Each operation kind the compiler emits has its facts predicted, or reads none.
    operations = {spec.operation for spec in compile_host(reference_state())}
    predicted = {
        spec.operation for spec in compile_host(reference_state()) if predicted_facts([spec])
    }
    assert operations - predicted <= {"server.shell", "apt.update"}


def test_a_fact_key_binds_positional_and_keyword_arguments_alike() -> None:
    assert fact_key(File, ("/etc/x",), {}) == fact_key(File, (), {"path": "/etc/x"})
    assert fact_key(SystemdStatus, (), {"services": ["a"]}) == fact_key(
        SystemdStatus, (), {"services": ["a"], "user_mode": False}
    )
    assert fact_key(File, (), {"path": "/etc/x"}) != fact_key(File, (), {"path": "/etc/y"})


@pytest.mark.parametrize(
    ("spec", "fact", "dropped"),
    [
        (
            _spec("files.put", dest="/etc/acme/agent.conf"),
            (File, {"path": "/etc/acme/agent.conf"}),
            True,
        ),
        (_spec("files.put", dest="/etc/acme/agent.conf"), (Directory, {"path": "/etc/acme"}), True),
        (_spec("files.put", dest="/etc/acme/agent.conf"), (File, {"path": "/etc/acmex"}), False),
        (_spec("files.put", dest="/etc/acme/agent.conf"), (Users, {}), False),
        (_spec("files.put", dest="/etc/passwd"), (Users, {}), True),
        (_spec("files.directory", path="/var/lib"), (File, {"path": "/var/lib/acme/x"}), True),
        (_spec("server.user", user="acme", home="/home/acme"), (Groups, {}), True),
        (_spec("server.user", user="acme", home="/home/acme"), (Sysctl, {"keys": ["a"]}), False),
        (
            _spec("server.sysctl", key="net.a", persist_file="/etc/9.conf"),
            (Sysctl, {"keys": ["net.b"]}),
            False,
        ),
        (
            _spec("server.sysctl", key="net.a", persist_file="/etc/9.conf"),
            (Sysctl, {"keys": ["net.a"]}),
            True,
        ),
        (
            _spec("server.sysctl", key="net.a/b", persist_file="/etc/9.conf"),
            (Sysctl, {"keys": ["net.b"]}),
            True,
        ),
        (
            _spec("server.sysctl", key="a", persist_file="/etc/sysctl.d/9.conf"),
            (Sysctl, {"keys": ["a"]}),
            True,
        ),
        (
            _spec("server.sysctl", key="a", persist_file="/etc/sysctl.d/9.conf"),
            (FindInFile, {"path": "/etc/sysctl.d/9.conf", "pattern": "^a$"}),
            True,
        ),
        (
            _spec("systemd.service", service="a.service"),
            (SystemdEnabled, {"services": ["a"]}),
            True,
        ),
        (_spec("systemd.service", service="a.service"), (File, {"path": "/etc/x"}), True),
        (_spec("apt.update"), (DebPackages, {}), False),
        (_spec("apt.packages", packages=["a"]), (File, {"path": "/etc/a.conf"}), True),
        (_spec("apt.packages", packages=["a"]), (Os, {}), False),
        (_spec("server.shell", commands=["x"]), (Directory, {"path": "/"}), True),
        (_recorded(), (Users, {}), False),
        (_recorded(), (File, {"path": "/var/lib/patchring/pending-restarts/a.service"}), True),
        # what a shell step changes is what it declares, never guessed from its text
        (_spec("server.shell", ("restart:a.service",), commands=[RECORD]), (Users, {}), True),
        (_edited("/etc/a.conf"), (File, {"path": "/etc/a.conf"}), True),
        (_edited("/etc/a.conf"), (Directory, {"path": "/etc"}), True),
        (_edited("/etc/a.conf"), (Sysctl, {"keys": ["a.b"]}), False),
        (_edited("/etc/a.conf"), (SystemdStatus, {"services": ["a"]}), False),
        (  # the restart itself starts a program of the host: anything may change
            _spec("server.shell", ("restart:a.service",), commands=["systemctl restart a"]),
            (File, {"path": "/etc/x"}),
            True,
        ),
        (_spec("server.shell", ("command:x",), commands=[RECORD]), (Users, {}), True),
        (_spec("server.user", user="a"), (File, {"path": "/etc/subuid"}), True),
        (_spec("files.put", dest="/usr/local/bin/x"), (Which, {"command": "x"}), True),
        (_spec("files.put", dest="/etc/x"), (Which, {"command": "x"}), False),
        (_spec("apt.packages", packages=["a"]), (Which, {"command": "x"}), True),
        (_spec("server.shell", commands=["x"]), (TmpDir, {}), False),
        (_spec("files.put", dest="/etc/x"), (Date, {}), True),  # unknown to the engine: dropped
    ],
)
def test_what_an_operation_may_change(spec: OpSpec, fact: FactRequest, dropped: bool) -> None:
    cls, kwargs = fact
    assert touches(effect_of(spec), fact_subjects(cls.name, kwargs)) is dropped


def _sh_lines(command: str) -> tuple[bool, list[str]]:
    """Run a command as pyinfra does (`sh -c`), stdout split into lines as pyinfra splits them."""
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    lines = proc.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return proc.returncode == 0, lines


def _alone(cls: Any, kwargs: dict[str, Any]) -> Any:
    """What pyinfra's `_get_fact` makes of the fact read on its own."""
    fact = cls()
    command = fact.command(**kwargs) if kwargs else fact.command()
    text = command.get_raw_value() if isinstance(command, StringCommand) else command
    ok, lines = _sh_lines(text)
    assert ok
    return fact.process(lines) if lines else fact.default()


def test_a_batch_gives_what_each_fact_read_alone_gives(tmp_path: Path) -> None:
    (tmp_path / "agent.conf").write_text("level = info\nport = 9\n")
    (tmp_path / "no-newline").write_text("last line without newline")
    (tmp_path / "empty").write_text("")
    (tmp_path / "sub").mkdir()
    requests: list[FactRequest] = [
        (File, {"path": str(tmp_path / "agent.conf")}),
        (File, {"path": str(tmp_path / "missing")}),
        (File, {"path": str(tmp_path / "sub")}),
        (Directory, {"path": str(tmp_path / "sub")}),
        (Directory, {"path": str(tmp_path / "agent.conf")}),
        (Sha256File, {"path": str(tmp_path / "agent.conf")}),
        (Sha256File, {"path": str(tmp_path / "empty")}),
        (FindInFile, {"path": str(tmp_path / "agent.conf"), "pattern": "^port"}),
        (FindInFile, {"path": str(tmp_path / "no-newline"), "pattern": "last"}),
        (FindInFile, {"path": str(tmp_path / "agent.conf"), "pattern": "^nothing"}),
        (Users, {}),
        (Groups, {}),
        (Os, {}),
        (Which, {"command": "sh"}),
    ]
    marker = "patchring-facts-test"
    script, facts = batch_command(requests, marker)
    ok, lines = _sh_lines(script)
    assert ok
    batched = parse_batch(requests, facts, lines, marker)
    for cls, kwargs in requests:
        assert batched[fact_key(cls, (), kwargs)] == _alone(cls, kwargs), cls.name
    assert batched[fact_key(File, (), {"path": str(tmp_path / "missing")})] is None
    assert batched[fact_key(FindInFile, (), requests[8][1])] == ["last line without newline"]


def test_a_fact_whose_command_fails_is_left_to_pyinfra() -> None:
    marker = "m"
    lines = ["m begin 0", "out", "", "m end 0 1", "m begin 1", "##PYINFRA_NOCMD##", "", "m end 1 0"]
    requests: list[FactRequest] = [(Os, {}), (DebPackages, {})]
    assert parse_batch(requests, [Os(), DebPackages()], lines, marker) == {}


class _LocalHost:
    """A host that is this machine: commands run with the local `sh`; facts read alone."""

    def __init__(self) -> None:
        self.current_op_global_arguments: dict[str, Any] | None = None
        self.commands: list[str] = []
        self.state = SimpleNamespace(is_executing=False)
        self.op_hash_order: list[str] = []
        self.current_op_hash: str | None = None
        self.executing_op_hash: str | None = None

    def run_shell_command(self, command: StringCommand, **_: Any) -> tuple[bool, Any]:
        text = command.get_raw_value()
        self.commands.append(text)
        ok, lines = _sh_lines(text)
        return ok, type("Output", (), {"stdout_lines": lines})()

    def get_fact(self, cls: Any, *args: Any, **kwargs: Any) -> Any:
        self.commands.append(f"fact {cls.name}")
        return _alone(cls, dict(fact_key_args(cls, args, kwargs)))


def fact_key_args(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"path": args[0]} if args else kwargs


def _cache(host: _LocalHost, predicted: list[FactRequest]) -> FactCache:
    return FactCache(host, predicted, read_fact=host.get_fact, run_command=host.run_shell_command)  # type: ignore[arg-type]


def test_the_first_miss_reads_every_predicted_fact_in_one_command(tmp_path: Path) -> None:
    host = _LocalHost()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    cache = _cache(host, [(File, {"path": a}), (File, {"path": b}), (Os, {})])
    assert cache.get_fact(File, path=a) is None
    assert cache.get_fact(File, b) is None
    assert cache.get_fact(Os) == _alone(Os, {})
    assert cache.reads == 1 and len(host.commands) == 1


def test_a_change_drops_only_the_facts_it_may_touch_and_they_are_read_again(tmp_path: Path) -> None:
    host = _LocalHost()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    cache = _cache(host, [(File, {"path": a}), (File, {"path": b})])
    assert cache.get_fact(File, path=a) is None and cache.get_fact(File, path=b) is None
    cache.effect = effect_of(_spec("files.put", dest=a))
    cache.changed()  # the upload of `a`
    Path(a).write_text("now here\n")
    Path(b).write_text("changed behind the operation's back\n")
    assert cache.get_fact(File, path=b) is None  # not touched by that operation: still cached
    assert cache.get_fact(File, path=a)["size"] == 9  # read again: true after the change
    assert cache.reads == 2
    cache.effect = None  # a shell command: anything may have changed
    cache.changed()
    assert cache.get_fact(File, path=b)["size"] == 36


def test_a_fact_read_as_another_user_bypasses_the_cache(tmp_path: Path) -> None:
    host = _LocalHost()
    cache = _cache(host, [])
    host.current_op_global_arguments = {"_sudo": True}
    cache.get_fact(Os)
    cache.get_fact(Os)
    assert host.commands == ["fact server.Os", "fact server.Os"] and cache.values == {}


def test_after_a_change_only_facts_that_operations_still_to_run_read_are_read_again(
    tmp_path: Path,
) -> None:
    host = _LocalHost()
    early, own_next, later, also_later = (
        str(tmp_path / name) for name in ("early", "next", "later", "also")
    )
    cache = _cache(host, [])
    host.op_hash_order = ["op0", "op1", "op2"]
    host.current_op_hash = "op1"  # preparing: op1 reads two facts, op2 two
    cache.get_fact(File, path=early)
    cache.get_fact(File, path=own_next)
    host.current_op_hash = "op2"
    cache.get_fact(File, path=later)
    cache.get_fact(File, path=also_later)
    host.state.is_executing, host.executing_op_hash = True, "op1"
    cache.effect = None
    cache.changed()  # op0 ran a shell command: every fact dropped
    host.commands.clear()
    cache.get_fact(File, path=early)  # op1 runs: one batch with all still to be read
    assert len(host.commands) == 1
    assert all(path in host.commands[0] for path in (early, own_next, later, also_later))
    cache.get_fact(File, path=own_next)  # cached
    cache.changed()  # op1's own command
    cache.get_fact(File, path=early)  # op1 reads a fact again: with op2's, not its own others
    assert len(host.commands) == 2
    assert early in host.commands[1] and later in host.commands[1]
    assert own_next not in host.commands[1]
    host.executing_op_hash = "op2"
    cache.get_fact(File, path=later)
    cache.get_fact(File, path=also_later)
    assert len(host.commands) == 2


def test_the_compilers_restart_record_is_known_narrow_and_its_restart_is_not() -> None:
    effects = {s.description.split(":")[0]: effect_of(s) for s in compile_host(reference_state())}
    assert effects["record pending restarts"] == ("/var/lib/patchring/pending-restarts",)
    persist = [
        effect_of(s) for s in compile_host(reference_state()) if "persist in" in s.description
    ]
    assert persist == [("/etc/sysctl.d/90-patchring.conf",)]
    assert effects["restart acme-agent.service (/etc/acme/agent.conf changed)"] is None
    assert effects["service acme-agent"] is None
