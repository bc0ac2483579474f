"""Patch management, the pure core: parse what hosts report, classify pending updates by origin,
read the Debian Security Tracker, compute each host's open CVEs, evaluate patch baselines and
resolve them into a lock file.

Modules: `versions` (Debian ordering), `probeparse` (host output -> assessment parts),
`origins` (Origins-Pattern matching, security classification), `tracker` (the tracker JSON),
`exposure` (open CVEs per host), `approval` (baseline evaluation), `lock` (lock resolution)
and `lockfile` (lock YAML: dump and located load). Nothing here runs commands, opens sockets or
imports pyinfra, testinfra or gitpython; inputs are text and models, outputs are models.
"""
