"""Finding and checking the pyinfra deploy a policy's `deploy:` entry names, without running it.

`use: module:function` names a module in the policy repository's own `deploys/` folder
(`deploys/<module>.py`, dots for subfolders), read through the `ProjectSource` so a Git commit's
version is what runs; when the repository has none, the `deploys` package installed with
patchring. The repository wins: a project can override a packaged deploy by giving its own.
At validation time the module is parsed, not imported: a missing module, a syntax error, a
function that is not defined at the module's top level, or `args` that do not bind to its
signature are located errors. Pure; imports the standard library (`ast`, `inspect`,
`importlib.util` to find the installed package's files) and the package's model modules.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path
from typing import Any

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import DeployModule
from orchestrator.model.policy import PolicyDocument
from orchestrator.policy.projectsource import ProjectSource
from orchestrator.policy.validation import suggest
from orchestrator.policy.yamlsource import LocatedYaml, YamlPath
from orchestrator.source import SourceLocation

DEPLOY_FOLDER = "deploys"
INSTALLED_PACKAGE = "deploys"


def module_path(module: str) -> str:
    """The repository-relative file of deploy module `module` (`web.nginx` ->
    `deploys/web/nginx.py`)."""
    return f"{DEPLOY_FOLDER}/{module.replace('.', '/')}.py"


def _installed_text(module: str) -> str | None:
    """The source of `deploys.<module>` as installed with patchring, found without importing
    it (None when there is no such module)."""
    spec = importlib.util.find_spec(INSTALLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for candidate in (
            Path(folder, *module.split(".")).with_suffix(".py"),
            Path(folder, *module.split("."), "__init__.py"),
        ):
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
    return None


def find_deploy(source: ProjectSource, module: str) -> tuple[DeployModule | None, str | None]:
    """The module `use` names (the repository's first, then the installed one), or why not."""
    path = module_path(module)
    try:
        return DeployModule(origin="repository", path=path, content=source.read_text(path)), None
    except (FileNotFoundError, IsADirectoryError):
        pass
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read deploy module {path}: {error}"
    text = _installed_text(module)
    if text is None:
        return None, (
            f"deploy module '{module}' not found: no {path} in the policy repository, "
            f"and no module '{INSTALLED_PACKAGE}.{module}' installed with patchring"
        )
    return DeployModule(origin="installed", path=path, content=text), None


def _signature(node: ast.FunctionDef) -> inspect.Signature:
    """The signature of a parsed function, defaults stood in by a marker (never evaluated)."""
    arguments = node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    kinds: list[inspect._ParameterKind] = [inspect.Parameter.POSITIONAL_ONLY] * len(
        arguments.posonlyargs
    )
    kinds += [inspect.Parameter.POSITIONAL_OR_KEYWORD] * len(arguments.args)
    parameters = [
        inspect.Parameter(
            arg.arg, kind, default=... if index >= first_default else inspect.Parameter.empty
        )
        for index, (arg, kind) in enumerate(zip(positional, kinds, strict=True))
    ]
    if arguments.vararg:
        parameters.append(inspect.Parameter(arguments.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        empty = inspect.Parameter.empty
        parameters.append(
            inspect.Parameter(
                arg.arg, inspect.Parameter.KEYWORD_ONLY, default=empty if default is None else ...
            )
        )
    if arguments.kwarg:
        parameters.append(inspect.Parameter(arguments.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def check_deploy(
    found: DeployModule, function: str, args: dict[str, Any], shown: str
) -> tuple[str | None, list[tuple[str, str | None]]]:
    """Whether `function` of the module takes `args`: the problem with `use` (no such
    function, or the module is not valid Python), and the problems with `args`, each with the
    argument it is about (None for one about them all, like a missing argument)."""
    try:
        tree = ast.parse(found.content, filename=found.path)
    except SyntaxError as error:
        return f"{shown} is not valid Python: {error.msg} (line {error.lineno})", []
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    node = functions.get(function)
    if not isinstance(node, ast.FunctionDef):
        return f"{shown} has no deploy function '{function}'{suggest(function, functions)}", []
    signature = _signature(node)
    call = f"args do not fit {function}({ast.unparse(node.args)})"
    named = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        named += list(args)
    unknown = [name for name in args if name not in named]
    if unknown:
        return None, [
            (f"{call}: unknown argument '{name}'{suggest(name, named)}", name) for name in unknown
        ]
    try:
        signature.bind(**args)
    except TypeError as error:
        return None, [(f"{call}: {error}", None)]
    return None, []


def load_deploys(
    source: ProjectSource, document: PolicyDocument, located: LocatedYaml
) -> tuple[tuple[DeployModule | None, ...], list[Diagnostic]]:
    """Each `deploy:` entry's module when it comes from the repository (None for an installed
    one, which the engine imports), and every problem, located at the entry."""
    modules: list[DeployModule | None] = []
    problems: list[Diagnostic] = []
    for index, entry in enumerate(document.deploy):
        path: YamlPath = ("deploy", index)
        module, _, function = entry.use.partition(":")
        found, missing = find_deploy(source, module)
        if found is None:
            problems.append(Diagnostic(located.value_location((*path, "use")), missing or ""))
            modules.append(None)
            continue
        shown = found.path if found.origin == "repository" else f"installed {found.path}"
        bad_use, bad_args = check_deploy(found, function, entry.args, shown)
        if bad_use:
            problems.append(Diagnostic(located.value_location((*path, "use")), bad_use))
        for message, named in bad_args:
            where: SourceLocation = (
                located.key_location((*path, "args", named))
                if named
                else located.value_location((*path, "args"))
            )
            problems.append(Diagnostic(where, message))
        modules.append(found if found.origin == "repository" else None)
    return tuple(modules), problems
