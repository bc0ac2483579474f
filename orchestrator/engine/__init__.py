"""The engine: the only part of patchring that imports pyinfra.

`plan_hosts` and `apply_hosts` take resolved desired states and return plans and results per
host; nothing here prints.
"""

from orchestrator.engine.assess import RawAssessment, assess_hosts
from orchestrator.engine.run import apply_hosts, plan_hosts, run_on_hosts

__all__ = ["RawAssessment", "apply_hosts", "assess_hosts", "plan_hosts", "run_on_hosts"]
