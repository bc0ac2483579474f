"""Which values of a project are secret, found at load time.

A value is secret when it is marked so or named so:
- tagged in YAML: `!secret VALUE`, or read from outside the repository's text with `!env NAME`
  (an environment variable) or `!file PATH` (a regular file inside the repository, trailing
  newlines dropped, as `$(cat PATH)` does); these tags are allowed only in `vars` sections;
- named in the inventory's `secret_vars: [db_password, ...]` (any layer, any host);
- named like a secret (`orchestrator.secrets.looks_secret`: `db_password`, `api_key`, `jwt`),
  strings only, public keys excepted;
- read by a user's `password:` template (a crypt hash is secret whatever its variable's name).

`project_secrets` collects the texts of all of them; the CLI builds its one `Masker` from that.
Pure: reads files and the environment only through a `ProjectSource`; never imports the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Diagnostic
from orchestrator.policy.accounts import password_variables
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource, check_relative
from orchestrator.policy.validation import suggest
from orchestrator.policy.yamlsource import (
    ENV_TAG,
    LocatedYaml,
    ReferenceProblem,
    ReferenceReader,
    YamlPath,
)
from orchestrator.secrets import named_secret_texts, scalar_texts

if TYPE_CHECKING:
    from orchestrator.model.desired import VarValue
    from orchestrator.model.inventory import Inventory
    from orchestrator.policy.loader import LoadedPolicy

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def source_references(source: ProjectSource) -> ReferenceReader:
    """Reads `!env NAME` from the source's environment and `!file PATH` from its files."""

    def read(tag: str, argument: str) -> str:
        if tag == ENV_TAG:
            return _read_env(source, argument)
        return _read_file(source, argument)

    return read


def _read_env(source: ProjectSource, name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ReferenceProblem(f"'!env {name}': not an environment variable name")
    value = source.read_env(name)
    if value is None:
        raise ReferenceProblem(f"environment variable '{name}' is not set (read by '!env {name}')")
    return value


def _read_file(source: ProjectSource, path: str) -> str:
    try:
        return source.read_text(check_relative(path).as_posix()).rstrip("\r\n")
    except PathOutsideRootError as error:
        raise ReferenceProblem(f"'!file {path}': {error.message}") from None
    except (FileNotFoundError, IsADirectoryError):
        raise ReferenceProblem(f"'!file {path}': file not found") from None
    except UnicodeDecodeError:
        raise ReferenceProblem(f"'!file {path}': not a UTF-8 text file") from None
    except OSError as error:
        raise ReferenceProblem(f"'!file {path}': cannot read it: {error.strerror}") from None


def misplaced_secrets(located: LocatedYaml, sections: Iterable[YamlPath]) -> list[Diagnostic]:
    """`!secret`, `!env` and `!file` outside every `vars` section: a secret belongs in a
    variable (which a template or field then uses), so that it is masked by name everywhere."""
    allowed = tuple(sections)
    return [
        Diagnostic(
            located.value_location(path),
            "'!secret', '!env' and '!file' are allowed only on a value under 'vars:'; "
            "set a variable and use it with {{ name }}",
        )
        for path in sorted(located.secrets, key=str)
        if not any(
            path[: len(section)] == section and len(path) > len(section) for section in allowed
        )
    ]


def marked_texts(located: LocatedYaml, path: YamlPath, value: Any) -> tuple[str, ...]:
    """The texts of the parts of `value` (found at `path`) that a YAML tag marks as secret."""
    if located.is_secret(path):
        return tuple(scalar_texts(value))
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += marked_texts(located, (*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += marked_texts(located, (*path, index), item)
    return tuple(found)


def _layers(
    policies: Iterable[LoadedPolicy], inventory: Inventory
) -> Iterator[dict[str, VarValue]]:
    from orchestrator.model.desired import VarValue

    for policy in policies:
        yield {
            name: VarValue(
                value=value,
                location=policy.yaml.value_location(("vars", name)),
                secrets=marked_texts(policy.yaml, ("vars", name), value),
            )
            for name, value in policy.document.vars.items()
        }
    yield inventory.vars
    yield from (group.vars for group in inventory.groups.values())
    yield from (ring.vars for ring in inventory.rings)
    yield from (host.vars for host in inventory.hosts.values())


def project_secrets(
    policies: Iterable[LoadedPolicy], inventory: Inventory | None
) -> frozenset[str]:
    """Every secret text of every variable layer (policy defaults, inventory, groups, rings,
    hosts): tagged values, `secret_vars` names and secret-looking names."""
    policies = tuple(policies)
    hashes = password_variables(policy.document for policy in policies)
    if inventory is None:
        return frozenset(
            text
            for policy in policies
            for name, value in policy.document.vars.items()
            for text in (
                *marked_texts(policy.yaml, ("vars", name), value),
                *named_secret_texts(name, value),
                *(scalar_texts(value) if name in hashes else ()),
            )
        )
    named = set(inventory.secret_vars) | hashes
    found: set[str] = set()
    for layer in _layers(policies, inventory):
        for name, var in layer.items():
            found.update(var.secrets)
            found.update(named_secret_texts(name, var.value))
            if name in named:
                found.update(scalar_texts(var.value))
    found.update(password.get_secret_value() for password in inventory.sudo_passwords.values())
    return frozenset(found)


def unknown_secret_vars(policies: Iterable[LoadedPolicy], inventory: Inventory) -> list[Diagnostic]:
    """`secret_vars` entries no layer sets: most likely a typo that would leave a secret in
    clear."""
    known = {name for layer in _layers(policies, inventory) for name in layer}
    return [
        Diagnostic(
            where,
            f"secret_vars names '{name}', which no policy or inventory sets"
            f"{suggest(name, sorted(known))}",
        )
        for name, where in inventory.secret_vars.items()
        if name not in known
    ]
