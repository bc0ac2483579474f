"""The local lab fleet: real Debian 12 hosts booted here by systemd-nspawn, and a signed apt repo.

Used by the integration tests, the benchmarks and the demo (`patchring lab up`). The public API is
re-exported here; fault injection for tests lives in `orchestrator.lab.faults`. Needs root and a
few Debian packages (the errors say which). This package imports nothing from the rest of
patchring except `orchestrator.errors`, and nothing imports it but the CLI and the tests.
"""

from __future__ import annotations

from .config import LabConfig, LabHost, LabStatus
from .fleet import lab_down, lab_status, lab_up

__all__ = ["LabConfig", "LabHost", "LabStatus", "lab_down", "lab_status", "lab_up"]
