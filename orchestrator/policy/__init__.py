"""Policies: located YAML loading, schema and cross-file validation, per-host resolution.

Pure: reads files only through a `ProjectSource`; never imports the CLI, pyinfra or testinfra.
The names below are the package's public API; `orchestrator.inventory` imports the YAML and
validation modules directly (not this file's names), which keeps the two packages free of cycles.
"""

from __future__ import annotations

from orchestrator.policy.explain import (
    Explanation,
    ResourceRow,
    VarRow,
    explain_host,
    explain_state,
)
from orchestrator.policy.loader import LoadedPolicy, collect_policies, load_policies
from orchestrator.policy.project import Project, load_project
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource, WorktreeSource
from orchestrator.policy.schema import inventory_json_schema, policy_json_schema
from orchestrator.policy.yamlsource import LocatedYaml, parse_yaml

__all__ = [
    "Explanation",
    "LoadedPolicy",
    "LocatedYaml",
    "PathOutsideRootError",
    "Project",
    "ProjectSource",
    "ResourceRow",
    "VarRow",
    "WorktreeSource",
    "collect_policies",
    "explain_host",
    "explain_state",
    "inventory_json_schema",
    "load_policies",
    "load_project",
    "parse_yaml",
    "policy_json_schema",
]
