#!/usr/bin/env bash
# The shell steps of patchring's CI templates (GitHub Actions and GitLab CI call this script,
# so what runs in a pipeline is what the project's tests run).
#
#   patchring-ci.sh validate   check every policy and inventory file (located errors; on GitHub
#                              Actions also as annotations)
#   patchring-ci.sh plan       what the change does: `plan --base REF --format markdown` when
#                              PATCHRING_BASE_REF is set (no host contacted), else a live plan
#   patchring-ci.sh verify     check the fleet against the policies; JUnit, HTML, Markdown reports
#   patchring-ci.sh rollout    start or continue the rollout; waiting (soak, approval, window)
#                              is success, a halt is failure; reports are written either way
#   patchring-ci.sh reports    render the latest run's reports into the output folder
#
# Environment: PATCHRING (the command, default `patchring`), PATCHRING_REPO (default .),
# PATCHRING_OUT (reports folder, default patchring-out), PATCHRING_BASE_REF, PATCHRING_LEDGER
# (e.g. a postgresql:// URL from a CI secret), PATCHRING_CHANGE_TICKET. When GITHUB_STEP_SUMMARY
# is set, the plan and the report are appended to the job summary.
# Exit codes: 0 success; 1 invalid input; 3 hosts, checks or gates failed (halted); others are
# patchring's own.
set -euo pipefail

step="${1:?usage: patchring-ci.sh validate|plan|verify|rollout|reports}"
read -r -a patchring <<<"${PATCHRING:-patchring}"
repo="${PATCHRING_REPO:-.}"
out="${PATCHRING_OUT:-patchring-out}"
mkdir -p "$out"

summary() {  # append a file to the job summary, where the CI has one
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$1" >>"$GITHUB_STEP_SUMMARY"
  fi
}

reports() {  # the latest run record as every report CI shows
  local format file
  for format in junit:junit.xml html:report.html markdown:report.md json:run.json; do
    file="$out/${format#*:}"
    "${patchring[@]}" report --repo "$repo" --format "${format%%:*}" --output "$file"
  done
  summary "$out/report.md"
}

case "$step" in
  validate)
    rc=0
    "${patchring[@]}" validate --repo "$repo" 2>"$out/validate.log" || rc=$?
    cat "$out/validate.log" >&2
    if [ "${GITHUB_ACTIONS:-}" = true ]; then  # located errors become annotations on the diff
      sed -nE 's/^([^:]+):([0-9]+):([0-9]+): (error|warning): (.*)$/::\4 file=\1,line=\2,col=\3::\5/p' \
        "$out/validate.log"
    fi
    exit "$rc"
    ;;
  plan)
    rc=0
    if [ -n "${PATCHRING_BASE_REF:-}" ]; then
      "${patchring[@]}" plan --repo "$repo" --base "$PATCHRING_BASE_REF" --format markdown \
        --detailed-exitcode >"$out/plan.md" || rc=$?
    else
      { echo '```'; "${patchring[@]}" plan --repo "$repo" --detailed-exitcode || rc=$?; echo '```'; } \
        >"$out/plan.md"
    fi
    cat "$out/plan.md"
    summary "$out/plan.md"
    case "$rc" in
      0) echo "patchring-ci: plan: no changes" ;;
      2) echo "patchring-ci: plan: changes pending (see plan.md)" ;;
      *) echo "patchring-ci: plan failed (exit $rc)" >&2; exit "$rc" ;;
    esac
    ;;
  verify)
    rc=0
    "${patchring[@]}" verify --repo "$repo" || rc=$?
    reports
    exit "$rc"
    ;;
  rollout)
    rc=0
    "${patchring[@]}" rollout --repo "$repo" --json >"$out/rollout.json" || rc=$?
    if [ -s "$out/rollout.json" ]; then
      reports
    fi
    case "$rc" in
      0) echo "patchring-ci: rollout completed or waiting (soak, approval, window): success" ;;
      3) echo "patchring-ci: rollout halted: failure (see the reports)" >&2 ;;
      *) echo "patchring-ci: rollout refused or failed (exit $rc)" >&2 ;;
    esac
    exit "$rc"
    ;;
  reports)
    reports
    ;;
  *)
    echo "patchring-ci: unknown step '$step' (validate, plan, verify, rollout, reports)" >&2
    exit 1
    ;;
esac
