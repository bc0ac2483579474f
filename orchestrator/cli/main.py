"""`patchring` entry point: argument parsing, dispatch, and the one error boundary.

Exit codes: 0 success and nothing pending; 1 invalid input (policy, inventory, flags);
2 changes present (`plan --detailed-exitcode`); 3 one or more hosts, checks or gates failed;
70 internal error (traceback written to a log file whose path is printed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator import __version__
from orchestrator.cli.console import Output
from orchestrator.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    PatchringError,
    UserInputError,
    ValidationError,
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad flags; 2 means "changes present" here, so raise instead."""

    def error(self, message: str) -> NoReturn:
        raise UserInputError(f"{message} (see '{self.prog} --help')")


# Which module of `orchestrator.cli` registers each command. Only the module of the command
# being run is imported: each pulls in its own heavy dependencies (pyinfra, pydantic models,
# Jinja2), and importing all of them would cost every command half a second of start-up.
COMMAND_MODULES: dict[str, str] = {
    "validate": "commands",
    "explain": "commands",
    "schema": "commands",
    "plan": "commands",
    "apply": "commands",
    "assess": "assess",
    "patches": "patches",
    "verify": "runs",
    "report": "runs",
    "compliance": "compliance",
    "rollout": "rollouts",
    "status": "rollouts",
    "approve": "rollouts",
    "pause": "rollouts",
    "resume": "rollouts",
    "abort": "rollouts",
    "rollback": "rollouts",
    "worker": "worker",
    "lab": "lab",
}
MODULE_ORDER = (
    "commands",
    "assess",
    "patches",
    "runs",
    "compliance",
    "rollouts",
    "worker",
    "lab",
)


def command_word(argv: Sequence[str]) -> str | None:
    """The command `argv` names, if it is a known one (top-level options all come first)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMAND_MODULES else None


def modules_for(argv: Sequence[str]) -> Sequence[str]:
    """The command modules parsing `argv` needs: the command's own; none for `--version`; all
    of them to list every command (help, a typo, no command)."""
    command = command_word(argv)
    if command:
        return (COMMAND_MODULES[command],)
    if "--version" in argv and not {"-h", "--help"} & set(argv):
        return ()
    return MODULE_ORDER


def build_parser(modules: Sequence[str] = MODULE_ORDER) -> argparse.ArgumentParser:
    """The parser of the commands these modules of `orchestrator.cli` register."""
    parser = _Parser(
        prog="patchring",
        description="Declarative configuration and staged patch "
        "rollouts for Debian fleets, from Git.",
    )
    parser.add_argument("--version", action="version", version=f"patchring {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "--repo", type=Path, default=Path("."), help="policy repository (default: .)"
    )
    common.add_argument(
        "--inventory",
        "-i",
        default="inventory",
        help="inventory file or folder, relative to --repo (default: inventory)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in modules:
        module = importlib.import_module(f"orchestrator.cli.{name}")
        if name == "lab":
            module.register(sub)
        else:
            module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    output = Output()
    try:
        arguments = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(modules_for(arguments)).parse_args(arguments)
        output.json_mode = bool(getattr(args, "json", False))
        return int(args.handler(args, output))
    except ValidationError as error:
        for diagnostic in error.diagnostics:
            output.error(str(diagnostic))
        output.error(f"patchring: {error.message}; nothing was changed")
        return error.exit_code
    except PatchringError as error:
        output.error(f"patchring: error: {error.message}")
        if error.hint:
            output.error(f"patchring: hint: {error.hint}")
        return error.exit_code
    except KeyboardInterrupt:
        output.error("patchring: interrupted; results recorded so far are kept")
        return EXIT_INTERRUPTED
    except Exception as error:  # the boundary: anything else is our bug, not the user's
        path = _write_crash_log(output.mask)
        output.error(f"patchring: internal error: {type(error).__name__}: {error}")
        output.error(f"patchring: the traceback was written to {path}; please report it")
        return EXIT_INTERNAL


def _write_crash_log(mask: Callable[[str], str]) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "patchring"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = mask(f"patchring {__version__} {' '.join(sys.argv)}\n{traceback.format_exc()}")
    for folder in (base, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"patchring-crash-{stamp}-{os.getpid()}.log"
            path.write_text(text)
            return path
        except OSError:
            continue
    return Path("(could not write a crash log)")
