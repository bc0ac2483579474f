"""`python -m orchestrator` runs the `patchring` command."""

from orchestrator.cli.entry import run

run()
