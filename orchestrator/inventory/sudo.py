"""Sudo passwords: read once when the inventory loads, from where the inventory says.

The inventory never holds a password; `ssh.sudo_password_env` names an environment variable
and `ssh.sudo_password_file` a file (absolute, or relative to the inventory file that names
it). Each source is read once, its problems reported at the key that names it; the values
travel as `SecretStr` (their repr and JSON form are `**********`) and join the project's
secrets, so every output masks them. Reads the environment through the `ProjectSource`;
never imports the CLI, pyinfra or paramiko.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from orchestrator.errors import Diagnostic
from orchestrator.policy.projectsource import ProjectSource
from orchestrator.source import SourceLocation


def read_sudo_passwords(
    sources: dict[str, SourceLocation], reader: ProjectSource, problems: list[Diagnostic]
) -> dict[str, SecretStr]:
    """`env:NAME` / `file:PATH` -> the password; a source that cannot be read adds a problem."""
    found: dict[str, SecretStr] = {}
    for source, where in sources.items():
        kind, _, name = source.partition(":")
        value, what = (
            (reader.read_env(name), f"environment variable '{name}'")
            if kind == "env"
            else (_read_file(name, where, problems), f"file '{name}'")
        )
        if value is None:
            if kind == "env":
                problems.append(
                    Diagnostic(where, f"{what} is not set (it holds the sudo password)")
                )
            continue
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            problems.append(Diagnostic(where, f"the sudo password in {what} is empty"))
        elif any(char in value for char in "\n\r\0"):
            problems.append(
                Diagnostic(where, f"the sudo password in {what} holds a line break or NUL")
            )
        else:
            found[source] = SecretStr(value)
    return found


def _read_file(path: str, where: SourceLocation, problems: list[Diagnostic]) -> str | None:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        problems.append(Diagnostic(where, f"cannot read the sudo password file '{path}': {reason}"))
        return None
