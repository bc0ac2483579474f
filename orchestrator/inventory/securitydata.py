"""The inventory's `security_data:` file: read through the project source, parsed on demand.

The path is checked at load time (relative, inside the repository); the file itself is read only
by the commands that use it (a real tracker file is tens of megabytes), through the same
`ProjectSource`, so it must be a regular file inside the repository. Problems are located at the
inventory's `security_data:` value, JSON problems at the file's own line and column. Pure; never
imports the CLI or pyinfra.
"""

from __future__ import annotations

from collections.abc import Collection

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.model.inventory import Inventory
from orchestrator.patching.tracker import SecurityTracker, parse_tracker
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource
from orchestrator.source import SourceLocation


def read_security_data(source: ProjectSource, inventory: Inventory) -> str | None:
    """The text of the inventory's security data file, or None when it names none."""
    path = inventory.security_data
    if path is None:
        return None
    where = inventory.security_data_location or SourceLocation(path)
    try:
        return source.read_text(path)
    except PathOutsideRootError as error:
        problem = error.message
    except FileNotFoundError:
        problem = f"'{path}' does not exist"
    except IsADirectoryError:
        problem = f"'{path}' is a directory, not a security tracker JSON file"
    except UnicodeDecodeError:
        problem = f"'{path}' is not UTF-8 text"
    except OSError as error:
        problem = f"'{path}' cannot be read: {error.strerror or error}"
    raise ValidationError([Diagnostic(where, f"security_data: {problem}")])


def parse_security_data(
    text: str, inventory: Inventory, releases: Collection[str] | None
) -> SecurityTracker:
    """The tracker data for `releases` only (the fleet's; every release when None); raises a
    located ValidationError."""
    return parse_tracker(text, inventory.security_data or "security data", releases=releases)
