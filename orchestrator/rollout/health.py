"""Health checks of a ring's gate: a command on each host, or an HTTP GET from the controller.

Each check is retried as the ring settings say; a command that never answers is `timeout`
(the gate is then inconclusive, never passed). `{{ host.name }}` and `{{ host.address }}` in a
command or URL are filled in per host: shell-quoted in a command, percent-encoded in a URL
(names and addresses are validated when the inventory loads; this is the second line).
"""

from __future__ import annotations

import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from orchestrator.engine import run_on_hosts
from orchestrator.model.desired import HostTarget
from orchestrator.model.ring import HealthCheck, HealthResult


def fill(text: str, target: HostTarget, escape: Callable[[str], str] = shlex.quote) -> str:
    """`text` with the host's name and address in, each through `escape` (default: quoted for
    a POSIX shell)."""
    for name in ("{{ host.name }}", "{{host.name}}"):
        text = text.replace(name, escape(target.name))
    for name in ("{{ host.address }}", "{{host.address}}"):
        text = text.replace(name, escape(target.address))
    return text


def _url_part(value: str) -> str:
    return urllib.parse.quote(value, safe=".:-_~[]")


def run_health_checks(
    checks: Sequence[HealthCheck],
    targets: Mapping[str, HostTarget],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, HealthResult]:
    """`<check>@<host>` -> result, after retries."""
    results: dict[str, HealthResult] = {}
    for check in checks:
        pending = dict(targets)
        attempts = 0
        last: dict[str, tuple[str, str]] = {}
        while pending and attempts <= check.retries:
            if attempts:
                sleep(check.interval.total_seconds())
            attempts += 1
            answers = _attempt(check, pending)
            for host, (status, detail) in answers.items():
                last[host] = (status, detail)
                if status == "passed":
                    results[f"{check.name}@{host}"] = HealthResult(
                        name=check.name,
                        host=host,
                        status="passed",
                        attempts=attempts,
                        detail=detail,
                    )
                    pending.pop(host)
        for host in pending:
            status, detail = last.get(host, ("timeout", "not run"))
            results[f"{check.name}@{host}"] = HealthResult(
                name=check.name, host=host, status=status, attempts=attempts, detail=detail
            )
    return results


def _attempt(check: HealthCheck, targets: Mapping[str, HostTarget]) -> dict[str, tuple[str, str]]:
    timeout = check.timeout.total_seconds()
    if check.command is not None:
        answers: dict[str, tuple[str, str]] = {}
        # One command text per host would need one session per text; fill per host only when
        # the command names the host, otherwise run the same text everywhere.
        groups: dict[str, dict[str, HostTarget]] = {}
        for name, target in targets.items():
            groups.setdefault(fill(check.command, target), {})[name] = target
        for command, members in groups.items():
            for host, (ok, output) in run_on_hosts(
                list(members.values()), command, timeout
            ).items():
                timed_out = output.startswith(("timed out", "unreachable"))
                status = "passed" if ok else ("timeout" if timed_out else "failed")
                answers[host] = (status, output.strip())
        return answers
    return {
        name: _http(fill(check.http or "", t, _url_part), check, timeout)
        for name, t in targets.items()
    }


def _http(url: str, check: HealthCheck, timeout: float) -> tuple[str, str]:
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            code = int(response.status)
    except urllib.error.HTTPError as error:
        code = int(error.code)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        return "timeout", f"GET {url}: {error}"
    ok = code == check.expect_status if check.expect_status else 200 <= code < 300
    return ("passed" if ok else "failed"), f"GET {url}: HTTP {code}"
