"""Policies: located YAML loading, schema and cross-file validation, per-host resolution.

Pure: reads files only through a `ProjectSource`; never imports the CLI, pyinfra or testinfra.
Import the modules directly (`orchestrator.policy.project.load_project`); this package file
re-exports nothing, so `orchestrator.inventory` can use the YAML loader without a cycle.
"""
