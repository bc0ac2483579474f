"""Turning an OpSpec into a pyinfra operation call, and naming the operations it may use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from io import BytesIO
from types import ModuleType
from typing import Any

from pyinfra.api.deploy import add_deploy
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta, add_op
from pyinfra.api.state import State
from pyinfra.operations import apt, files, server, systemd

from orchestrator.compiler.opspec import OpSpec
from orchestrator.engine.keyfetch import fetch_key
from orchestrator.errors import EngineError

OPERATIONS: dict[str, Callable[..., Any]] = {
    "apt.packages": apt.packages,
    "apt.update": apt.update,
    "files.put": files.put,
    "files.directory": files.directory,
    "server.group": server.group,
    "server.shell": server.shell,
    "server.sysctl": server.sysctl,
    "server.user": server.user,
    "systemd.service": systemd.service,
}


def resolve_deploy(use: str, source: str | None = None) -> Callable[..., Any]:
    """`module:function`, e.g. `motd:configure_motd`: from the policy repository's
    `deploys/<module>.py` when its source is given, else inside the installed `deploys`
    package."""
    module_name, _, func_name = use.partition(":")
    if source is not None:
        module = _repository_module(f"deploys/{module_name.replace('.', '/')}.py", source)
    else:
        try:
            module = importlib.import_module(f"deploys.{module_name}")
        except ImportError as error:
            raise EngineError(
                f"deploy module 'deploys.{module_name}' cannot be imported: {error}"
            ) from error
    func = getattr(module, func_name, None)
    if not callable(func):
        raise EngineError(f"{module.__name__} has no deploy function '{func_name}'")
    return func


def _repository_module(path: str, source: str) -> ModuleType:
    """A deploy module of the policy repository, run from the source the project was loaded
    with. It is not put in `sys.modules`: two projects (or two commits of one) with a module of
    the same name never see each other's."""
    module = ModuleType(f"policy_repository.{path.removesuffix('.py').replace('/', '.')}")
    module.__file__ = f"<policy repository>/{path}"
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    except Exception as error:  # the user's module failed at import time
        raise EngineError(f"deploy module {path} failed to load: {error}") from error
    return module


def add_spec(state: State, host: Host, spec: OpSpec, timeout: float) -> list[OperationMeta]:
    """Add one spec's operation(s) for one host; returns the metas to read results from."""
    common = {"host": host, "_timeout": int(timeout), "name": spec.description}
    if spec.is_deploy:
        before = len(host.op_hash_order)
        add_deploy(
            state,
            resolve_deploy(spec.operation.removeprefix("deploy:"), spec.module_source),
            host=host,
            **spec.args,
        )
        hashes = host.op_hash_order[before:]
        return [state.get_op_data_for_host(host, h).operation_meta for h in hashes]
    args: dict[str, Any] = dict(spec.args)
    if spec.fetch_url is not None and spec.fingerprint is not None:
        key = fetch_key(spec.fetch_url, spec.fingerprint, str(spec.args["dest"]), timeout)
        args["src"] = BytesIO(key)
    elif spec.content is not None:
        args["src"] = BytesIO(spec.content)  # in memory: pyinfra caches files by name
    result = add_op(state, OPERATIONS[spec.operation], **common, **args)
    return [result[host]]
