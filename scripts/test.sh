#!/usr/bin/env bash
# The whole test suite: static checks, unit tests, and integration tests on a real lab fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] || bash scripts/setup.sh
.venv/bin/ruff check orchestrator deploys tests bench
.venv/bin/ruff format --check orchestrator deploys tests bench
.venv/bin/mypy orchestrator
.venv/bin/python -m pytest "$@"
