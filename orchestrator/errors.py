"""The exception hierarchy of patchring and the exit code each class maps to.

Imports nothing from the package except `source`. Exceptions never print; the CLI's one
error boundary turns them into messages and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.source import SourceLocation

EXIT_OK = 0
EXIT_INVALID_INPUT = 1
EXIT_CHANGES_PRESENT = 2
EXIT_HOSTS_FAILED = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One located problem in the user's input: `file:line:col: error: message` (or
    `warning:` for one that does not fail validation)."""

    location: SourceLocation
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        """Errors fail validation; warnings (`severity="warning"`) are shown and do not."""
        return self.severity == "error"


class PatchringError(Exception):
    """Base of every error patchring raises on purpose."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UserInputError(PatchringError):
    """Input the user can fix: flags, names, files. Exit code 1."""

    exit_code = EXIT_INVALID_INPUT


class ValidationError(UserInputError):
    """One or more located problems in policy or inventory files, all collected and sorted
    (any warnings found with them are listed too; the count is of errors)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        count = sum(1 for d in self.diagnostics if d.is_error)
        super().__init__(f"{count} error{'s' if count != 1 else ''} found")


class UnknownHostError(UserInputError):
    """A host, ring or group named on the command line is not in the inventory."""


class LabError(UserInputError):
    """The local lab fleet cannot be started, inspected or stopped; the hint says what to do."""


class LabNotRunningError(LabError):
    """The lab named has no record and nothing of it runs (stopping it again is no error)."""


class EngineError(PatchringError):
    """The engine could not run at all (not a per-host failure, which is a result)."""


class InterruptedRunError(PatchringError):
    """The run was interrupted (Ctrl-C or SIGTERM). Exit code 130."""

    exit_code = EXIT_INTERRUPTED
