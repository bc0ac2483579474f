"""Rollouts as Temporal workflows: `steps` (the conductor's own steps, no temporalio),
`activities` and `workflow` (temporalio), `service` (client and workers). Importing this package
imports nothing heavy: the embedded conductor stays the default and never loads temporalio."""
