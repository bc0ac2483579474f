"""Pure rollout decisions within a ring: batches, failure budget, gate, windows and soak.

Settings and results in, verdicts out; no I/O, no hosts and no clock reads (the caller passes
every `now`), so each rule is covered by table-driven tests. The runner takes every decision
here and only carries them out. Verdict models and settings live in `model.ring` and are
re-exported. Must not import the engine, the verifier, the store or anything that touches a
host.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from math import ceil, floor

from orchestrator.model.results import HostResult
from orchestrator.model.ring import (
    BudgetVerdict,
    FailureBudget,
    Gate,
    GateResult,
    GateStatus,
    HealthCheck,
    HealthResult,
    HostFailureKind,
    NewFailure,
    RingSettings,
    check_batch_size,
    parse_duration,
)
from orchestrator.model.verification import CHECK_OK, HostVerification
from orchestrator.rollout.windows import next_window_start, window_open

__all__ = [
    "BudgetVerdict",
    "GateResult",
    "HealthResult",
    "HostFailureKind",
    "NewFailure",
    "RingSettings",
    "batch_sizes",
    "budget_state",
    "classify_host",
    "evaluate_gate",
    "failure_limit",
    "next_window_start",
    "observation_gap",
    "parse_duration",
    "soak_until",
    "split_batches",
    "window_open",
]

_SHOWN = 3  # hosts or checks named in one reason before "+N more"


def _percent(value: Fraction | float) -> str:
    """`66.67%`, `12.5%`, `100%`: two decimals at most."""
    return f"{float(value):.2f}".rstrip("0").rstrip(".") + "%"


def _listed(items: Sequence[str]) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _hosts(count: int) -> str:
    return f"{count} host{'' if count == 1 else 's'}"


# --- batches ------------------------------------------------------------------------------------


def batch_sizes(total: int, batches: Sequence[int | str]) -> list[int]:
    """Sizes of successive batches of a ring of `total` hosts, Ansible `serial` style: a count,
    or a percentage of the ring rounded up (at least 1); the last size repeats until every host
    is in a batch. No sizes means one batch of the whole ring."""
    specs = [check_batch_size(spec) for spec in batches] or ["100%"]
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        spec = specs[min(len(sizes), len(specs) - 1)]
        if isinstance(spec, str):
            size = max(1, ceil(Fraction(spec.removesuffix("%")) * total / 100))
        else:
            size = spec
        sizes.append(min(size, remaining))
        remaining -= sizes[-1]
    return sizes


def split_batches(hosts: Sequence[str], batches: Sequence[int | str]) -> list[tuple[str, ...]]:
    """The ring's hosts (in order) cut into batches of `batch_sizes`."""
    cut: list[tuple[str, ...]] = []
    start = 0
    for size in batch_sizes(len(hosts), batches):
        cut.append(tuple(hosts[start : start + size]))
        start += size
    return cut


# --- failure budget -----------------------------------------------------------------------------


def classify_host(
    applied: HostResult | None, verified: HostVerification | None
) -> HostFailureKind | None:
    """How a host failed, or None when it did not: apply problems first, then verification.
    A host with neither result never answered (unreachable); an applied host not yet
    verified has not failed (yet)."""
    if applied is not None and applied.status == "unreachable":
        return "unreachable"
    if applied is not None and applied.status == "failed":
        return "apply-failed"
    if verified is None:
        return "unreachable" if applied is None else None
    if verified.status == "unreachable":
        return "unreachable"
    return "verify-failed" if verified.status == "failed" else None


def failure_limit(budget: FailureBudget, ring_size: int) -> int:
    """Failures a ring of `ring_size` hosts may have: the stricter of the count and the
    percentage (rounded down); 0 when neither is set."""
    limits: list[int] = []
    if budget.max_failed is not None:
        limits.append(budget.max_failed)
    if budget.max_failed_percent is not None:
        share = Fraction(str(budget.max_failed_percent)) * ring_size / 100
        limits.append(floor(share))
    return min(limits, default=0)


def budget_state(
    ring_size: int, failures: Mapping[str, HostFailureKind], budget: FailureBudget
) -> BudgetVerdict:
    """The ring's failures so far against its budget; more failures than the limit exceed it
    (and halt the ring, leaving the remaining batches untouched)."""
    limit = failure_limit(budget, ring_size)
    kinds = list(failures.values())
    counts = {kind: kinds.count(kind) for kind in ("unreachable", "apply-failed", "verify-failed")}
    exceeded = len(failures) > limit
    detail = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    reason = (
        f"{len(failures)} of {_hosts(ring_size)} failed ({detail}); "
        f"the failure budget allows {limit}"
        if failures
        else ""
    )
    return BudgetVerdict(
        status="exceeded" if exceeded else "within",
        ring_size=ring_size,
        limit=limit,
        failed=len(failures),
        unreachable=counts["unreachable"],
        apply_failed=counts["apply-failed"],
        verify_failed=counts["verify-failed"],
        failed_hosts=tuple(failures),
        reason=reason,
    )


# --- gate ---------------------------------------------------------------------------------------


def _compliant(applied: HostResult | None, verified: HostVerification | None) -> bool:
    both = applied is not None and verified is not None
    return both and classify_host(applied, verified) is None


def observation_gap(verified: HostVerification | None) -> str | None:
    """Why the gate's verification did not observe a host (unreachable, rebooting, never
    verified), or None when it did. A host whose every check errored was not observed either:
    nothing about it is known, so none of its checks can count as failed."""
    if verified is None:
        return "not verified"
    if verified.status == "unreachable":
        return verified.error or "unreachable"
    if verified.results and all(result.status == "error" for result in verified.results):
        return f"no check could run: {verified.results[0].message or 'error'}"
    return None


def _unobserved_reason(gaps: Mapping[str, str]) -> str:
    """`2 host(s) not observed: a, b (unreachable: ...)`; when the hosts were not observed for
    different reasons: `a, b (a: unreachable: ...; b: not verified)`, hosts grouped by why."""
    by_why: dict[str, list[str]] = {}
    for host, why in gaps.items():
        by_why.setdefault(why, []).append(host)
    if len(by_why) == 1:
        why = next(iter(by_why))
    else:
        whys = [f"{_listed(hosts)}: {why}" for why, hosts in by_why.items()]
        more = f"; +{len(whys) - _SHOWN} more" if len(whys) > _SHOWN else ""
        why = "; ".join(whys[:_SHOWN]) + more
    return f"{len(gaps)} host(s) not observed: {_listed(list(gaps))} ({why})"


def _new_failures(
    hosts: Sequence[str],
    verified: Mapping[str, HostVerification],
    baseline: Mapping[str, HostVerification],
) -> list[NewFailure]:
    """Checks failing now that passed in the baseline (hosts missing from either are skipped)."""
    found: list[NewFailure] = []
    for host in hosts:
        before, now = baseline.get(host), verified.get(host)
        if before is None or now is None:
            continue
        passed = {result.check_id for result in before.results if result.status in CHECK_OK}
        found += [
            NewFailure(host=host, check_id=result.check_id)
            for result in now.results
            if result.status not in CHECK_OK and result.check_id in passed
        ]
    return found


def _health_reasons(
    checks: Sequence[HealthCheck],
    hosts: Sequence[str],
    health: Mapping[str, HealthResult],
) -> tuple[list[str], list[str], list[HealthResult]]:
    """(failed reasons, inconclusive reasons, bad results) of the gate's health checks on the
    observed `hosts`: a failure fails the gate; a timeout, or no result, is inconclusive."""
    results = {(result.name, result.host): result for result in health.values()}
    failed: list[str] = []
    unsure: list[str] = []
    bad: list[HealthResult] = []
    for check in checks:
        found = [results.get((check.name, host)) for host in hosts]
        missing = [h for h, r in zip(hosts, found, strict=True) if r is None]
        failing = [r for r in found if r is not None and r.status == "failed"]
        timeouts = [r for r in found if r is not None and r.status == "timeout"]
        bad += failing + timeouts
        if failing:
            named = [r.host + (f" ({r.detail})" if r.detail else "") for r in failing]
            failed.append(f"health check '{check.name}' failed on {_listed(named)}")
        if timeouts:
            named = [r.host for r in timeouts]
            unsure.append(f"health check '{check.name}' timed out on {_listed(named)}")
        if missing:
            unsure.append(f"health check '{check.name}' has no result for {_listed(missing)}")
    return failed, unsure, bad


def _regressions(
    gate: Gate,
    hosts: Sequence[str],
    verified: Mapping[str, HostVerification],
    baseline: Mapping[str, HostVerification] | None,
    failed: list[str],
    unsure: list[str],
) -> list[NewFailure]:
    """The new failures `no_new_failures` forbids on the observed `hosts`, noting a reason in
    `failed` (some found) or `unsure` (no baseline to compare with)."""
    if not gate.no_new_failures:
        return []
    if baseline is None:
        unsure.append("no baseline verification to compare with (no_new_failures)")
        return []
    found = _new_failures(hosts, verified, baseline)
    if found:
        named = [f"{f.host} {f.check_id}" for f in found]
        failed.append(f"{len(found)} new failure(s): {_listed(named)}")
    return found


def exception_debt(gate: Gate, ring_hosts: Sequence[str], excepted: Collection[str]) -> str | None:
    """Why the ring carries more exception debt than `max_exception_debt` allows, if it does:
    `excepted` are the hosts under an exception in force."""
    if gate.max_exception_debt is None:
        return None
    under = [h for h in ring_hosts if h in excepted]
    limit = gate.max_exception_debt
    allowed = (
        floor(Fraction(limit.rstrip("%")) * len(ring_hosts) / 100)
        if isinstance(limit, str)
        else limit
    )
    if len(under) <= allowed:
        return None
    return (
        f"exception debt: {len(under)} of {_hosts(len(ring_hosts))} under an exception "
        f"({_listed(under)}), more than max_exception_debt {limit} allows ({allowed})"
    )


def evaluate_gate(
    gate: Gate,
    ring_hosts: Sequence[str],
    applied: Mapping[str, HostResult],
    verified: Mapping[str, HostVerification],
    baseline: Mapping[str, HostVerification] | None,
    health: Mapping[str, HealthResult],
    excepted: Collection[str] = (),
) -> GateResult:
    """Whether the ring may be left, judged on the hosts the gate observed (see
    `observation_gap`). `failed` when an observed host shows a failure: the pass rate of the
    observed hosts is below the minimum, a check regressed (with `no_new_failures`) or a health
    check failed. Otherwise `inconclusive` when a host was not observed, too few were, there is
    no baseline to compare with, or a health check timed out or has no result. Otherwise
    `passed`. An unobserved host never counts as failed (its checks did not run) and owes no
    health result. `health` values are matched by (name, host); its keys are not read.
    `reasons` lists every finding, failures first."""
    total = len(ring_hosts)
    gaps = {h: gap for h in ring_hosts if (gap := observation_gap(verified.get(h))) is not None}
    observed = [h for h in ring_hosts if h not in gaps]
    compliant = sum(_compliant(applied.get(h), verified.get(h)) for h in observed)
    rate = Fraction(compliant * 100, len(observed)) if observed else Fraction(100)
    failed: list[str] = []
    unsure: list[str] = []
    if rate < Fraction(str(gate.min_pass_rate)):
        among = _hosts(total) if not gaps else f"{len(observed)} observed host(s)"
        failed.append(
            f"pass rate {_percent(rate)} < {_percent(gate.min_pass_rate)} "
            f"({compliant} of {among} compliant)"
        )
    regressions = _regressions(gate, observed, verified, baseline, failed, unsure)
    health_failed, health_unsure, bad = _health_reasons(gate.health_checks, observed, health)
    failed += health_failed
    debt = exception_debt(gate, ring_hosts, excepted)
    failed += [debt] if debt else []
    if gaps:
        unsure.append(_unobserved_reason(gaps))
    if len(observed) < gate.min_hosts:
        unsure.append(
            f"only {len(observed)} of {_hosts(total)} observed; the gate needs {gate.min_hosts}"
        )
    status: GateStatus = (
        "failed" if failed else "inconclusive" if unsure + health_unsure else "passed"
    )
    return GateResult(
        status=status,
        reasons=tuple(failed + unsure + health_unsure),
        hosts=total,
        observed=len(observed),
        compliant=compliant,
        pass_rate=round(float(rate), 2),
        unobserved=tuple(gaps),
        new_failures=tuple(regressions),
        health_failures=tuple(bad),
    )


# --- soak ---------------------------------------------------------------------------------------


def soak_until(gate_passed_at: datetime, soak: timedelta) -> datetime:
    """When the soak after a passed gate ends and the next ring may start."""
    return gate_passed_at + soak
