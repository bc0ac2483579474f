"""Verification: generated checks from the desired state, and users' own testinfra files.

`checks` (pure) says what to check, `probes` how to ask a host through testinfra's modules,
`runner` (the only testinfra importer) asks many hosts at once in batches over OpenSSH
(`batch`, `sshlink`), `usertests` runs users' files through pytest, and `export` writes the
generated checks as a standalone pytest-testinfra file. Importing this package does not import
testinfra: `verify_hosts` loads the runner when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orchestrator.model.desired import DesiredState
from orchestrator.model.inventory import DEFAULT_PARALLEL
from orchestrator.model.verification import HostVerification
from orchestrator.verify.checks import PlannedCheck, checks_for, plan_checks
from orchestrator.verify.export import render_pytest_module
from orchestrator.verify.patchchecks import PatchCheckData


def _no_mask(text: str) -> str:
    return text


def verify_hosts(
    fleet: Mapping[str, DesiredState],
    progress: Callable[[str, str], None] | None = None,
    mask: Callable[[str], str] = _no_mask,
    patching: PatchCheckData | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, HostVerification]:
    """Check every host against its desired state and its policies' own testinfra files, in
    parallel; see `orchestrator.verify.runner`. Unreachable hosts are results, never raised.
    `progress(host, status)` is called once per host; every text in the results goes through
    `mask` (secrets). `patching` (the run's baselines, lock dates and security data) adds the
    patch baseline's checks on the hosts a baseline governs. At most `parallel` hosts are
    reached at once."""
    from orchestrator.verify.runner import verify_hosts as run

    return run(fleet, progress, mask, patching, parallel)


__all__ = [
    "PatchCheckData",
    "PlannedCheck",
    "checks_for",
    "plan_checks",
    "render_pytest_module",
    "verify_hosts",
]
