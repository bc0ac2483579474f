"""The local lab fleet: real Debian 12 and 13 hosts booted here by systemd-nspawn, a signed apt
repository to patch from (with a security archive) and a security tracker fixture.

Used by the integration tests, the benchmarks and the demo (`patchring lab up`). The public API is
re-exported here; fault injection for tests lives in `orchestrator.lab.faults`. Needs root and a
few Debian packages (the errors say which). This package imports nothing from the rest of
patchring except `orchestrator.errors`, and nothing imports it but the CLI and the tests.
"""

from __future__ import annotations

from .config import MIXED, RELEASES, LabConfig, LabHost, LabStatus
from .fleet import lab_down, lab_publish, lab_publish_many, lab_status, lab_up
from .tracker import security_tracker_data, write_security_data

__all__ = [
    "MIXED",
    "RELEASES",
    "LabConfig",
    "LabHost",
    "LabStatus",
    "lab_down",
    "lab_publish",
    "lab_publish_many",
    "lab_status",
    "lab_up",
    "security_tracker_data",
    "write_security_data",
]
