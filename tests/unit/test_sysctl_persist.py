"""What a sysctl compiles to, run for real: pyinfra's own operation code turns each compiled spec
into shell commands (its facts read from a real file), and a local shell runs the commands
that write the persist file, on a copy of that file in a temporary folder (never the kernel's
live value, never this machine's /etc)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyinfra.context import ctx_host
from pyinfra.facts.files import FindInFile
from pyinfra.facts.server import Sysctl as SysctlFact

from orchestrator.compiler import compile_host
from orchestrator.compiler.opspec import OpSpec
from orchestrator.engine.operations import OPERATIONS
from orchestrator.model.policy import Sysctl
from tests.unit.builders import desired


class _LocalFacts:
    """Just enough of a pyinfra host: the live sysctl value is given, file facts run their
    real command on this machine."""

    def __init__(self, live: dict[str, Any]) -> None:
        self.live = live

    def get_fact(self, fact: type, **kwargs: Any) -> Any:
        if fact is SysctlFact:
            return dict(self.live)
        if fact is FindInFile:
            finder = fact()
            command = finder.command(**kwargs).get_raw_value()
            lines = subprocess.run(
                ["sh", "-c", command], capture_output=True, text=True, check=False
            ).stdout.splitlines()
            return finder.process(lines)
        raise AssertionError(f"unexpected fact {fact.__name__}")

    def noop(self, description: str) -> None:
        pass


def _commands(spec: OpSpec, live: dict[str, Any]) -> list[str]:
    inner = OPERATIONS[spec.operation]._inner  # type: ignore[attr-defined]
    with ctx_host.use(_LocalFacts(live)):
        return [c if isinstance(c, str) else c.get_raw_value() for c in inner(**spec.args)]


def _relocate(value: Any, path: str, local: str) -> Any:
    if isinstance(value, str):
        return value.replace(path, local)
    if isinstance(value, list):
        return [_relocate(item, path, local) for item in value]
    return value


def converge_persist_file(spec: Sysctl, path: str, local: Path, live: str) -> None:
    """Apply the sysctl's compiled specs to `local`, standing in for the host's `path`."""
    for op in compile_host(desired(spec)):
        op = op.model_copy(
            update={"args": {k: _relocate(v, path, str(local)) for k, v in op.args.items()}}
        )
        for command in _commands(op, {spec.key: live}):
            if str(local) in command:  # only what writes the file, never `sysctl -w`
                subprocess.run(["sh", "-c", command], check=True)


@pytest.mark.parametrize(
    "before",
    [
        "vm.swappiness = 10\n",
        "# tuned\nvm.swappiness=10\nkernel.panic = 5\n",
        "vm.swappiness = 10\nvm.swappiness = 30\n",  # what the old compiler left behind
        "",
    ],
)
def test_a_changed_value_is_changed_in_place_leaving_one_line(before: str, tmp_path: Path) -> None:
    path = "/etc/sysctl.d/90-patchring.conf"
    local = tmp_path / "90-patchring.conf"
    local.write_text(before)
    spec = Sysctl(key="vm.swappiness", value="20")
    converge_persist_file(spec, path, local, live="10")
    lines = local.read_text().splitlines()
    assert [line for line in lines if line.startswith("vm.swappiness")] == ["vm.swappiness = 20"]
    others = [line for line in before.splitlines() if not line.startswith("vm.swappiness")]
    assert [line for line in lines if not line.startswith("vm.swappiness")] == others
    if before.startswith("# tuned"):  # in place: the line keeps its position
        assert lines.index("vm.swappiness = 20") == 1
