#!/usr/bin/env bash
# One command from a fresh machine to a converged lab: set up, boot 6 Debian hosts over three
# rings, validate, plan, apply, plan again to show nothing is left to change, verify, and assess
# what each host still has pending.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pr=.venv/bin/patchring
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "patchring lab up --hosts 6"
$pr lab up --hosts 6
step "patchring validate"
$pr validate
step "patchring plan   (what would change, per host and ring)"
$pr plan
step "patchring apply"
$pr apply
step "patchring plan --detailed-exitcode   (a second look: nothing left to change)"
$pr plan --detailed-exitcode
step "patchring verify   (generated testinfra checks on every host; reports for auditors)"
$pr verify
step "patchring assess   (what each host still has pending: security and other updates, reboots, CVEs)"
$pr assess
step "Done. Try: $pr explain lab-01 | $pr report --format html -o report.html | $pr lab down"
