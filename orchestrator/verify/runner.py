"""Verify hosts with pytest-testinfra's own modules, in one or two ssh sessions per host.

The only module that imports testinfra. Every generated check (`checks.plan_checks`) is asked
through testinfra's modules by a probe (`probes.py`), but over a backend of our own that answers
from a cache, so the commands of all checks travel together:

1. Discovery: every check runs against a cache that knows nothing. Each command a check asks for
   is noted and answered with a guess (empty output, exit 0; a few facts testinfra asks to learn
   what kind of host it faces are guessed as Debian with systemd), so most checks reach their
   commands. Whatever a guess makes a check do is thrown away.
2. One batch: the noted commands run on the host in one ssh session, one shell script that
   frames each command's exit status, stdout and stderr (`batch.py`).
3. Replay: every check runs again, answered from the cache. A check whose real answers lead it to
   a command not in the cache (it branched) notes it, and the loop takes another batch; after
   `MAX_BATCHES`, such commands run one by one, live. Usually one batch answers everything.

Only replay results count, and each check's evidence is exactly the commands it consumed in
the final replay, with their answers (masked). Hosts run in parallel threads over OpenSSH with
a control master per host (`sshlink.py`); a host that cannot be reached or stops answering gets
every check as an error with the reason, and the run goes on. Users' own testinfra files run
afterwards as a pytest subprocess over the same connections (`usertests.py`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from orchestrator.fanout import in_windows
from orchestrator.model.desired import DesiredState
from orchestrator.model.exceptions import ActiveException
from orchestrator.model.inventory import DEFAULT_PARALLEL
from orchestrator.model.verification import CheckResult, Evidence, HostVerification
from orchestrator.verify.batch import Answer
from orchestrator.verify.checks import PlannedCheck, plan_checks
from orchestrator.verify.patchchecks import CommandOutput, PatchCheckData, evaluate_patch_check
from orchestrator.verify.probes import PROBES
from orchestrator.verify.sshlink import LinkError, SshConfig, SshLink
from orchestrator.verify.usertests import run_user_checks
from orchestrator.verify.waivers import host_status, waive

ProgressFn = Callable[[str, str], None]
MaskFn = Callable[[str], str]
MAX_BATCHES = 3

# Answers assumed during discovery only, for what testinfra asks to choose its module classes.
# They steer which commands go into the first batch; results always come from the host.
DISCOVERY_GUESSES = {
    "uname -s": Answer(0, b"Linux\n"),
    "cat /etc/os-release": Answer(0, b"ID=debian\n"),
    "command -v sysctl": Answer(0, b"/usr/sbin/sysctl\n"),
}
UNKNOWN = Answer(0)


class BatchLink(Protocol):
    """Runs a batch of commands on one host (`SshLink`; a local shell in unit tests)."""

    def run_batch(self, commands: Sequence[str]) -> list[Answer]: ...


def _no_mask(text: str) -> str:
    return text


def verify_hosts(
    fleet: Mapping[str, DesiredState],
    progress: ProgressFn | None = None,
    mask: MaskFn = _no_mask,
    patching: PatchCheckData | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> dict[str, HostVerification]:
    """Check every host against its desired state (and its policies' own testinfra files).
    Never raises for a host problem: unreachable hosts come back with status `unreachable`.
    `progress(host, status)` is called once per host, as soon as its results are complete.
    With `patching`, hosts a patch baseline governs also get the baseline's checks. At most
    `parallel` hosts have an ssh master open at once (see `orchestrator.fanout`)."""

    def window(chosen: dict[str, DesiredState]) -> dict[str, HostVerification]:
        return _verify_window(chosen, progress, mask, patching)

    return in_windows(fleet, parallel, window) if fleet else {}


def _verify_window(
    fleet: Mapping[str, DesiredState],
    progress: ProgressFn | None,
    mask: MaskFn,
    patching: PatchCheckData | None,
) -> dict[str, HostVerification]:
    folder = Path(tempfile.mkdtemp(prefix="patchring-verify-"))
    config = SshConfig.write([state.host for state in fleet.values()], folder)
    found: dict[str, HostVerification] = {}
    try:
        with ThreadPoolExecutor(max_workers=len(fleet)) as pool:
            jobs = {
                pool.submit(_verify_host, state, config, mask, patching): name
                for name, state in fleet.items()
            }
            for job in as_completed(jobs):
                name = jobs[job]
                found[name] = job.result()
                if progress and not (fleet[name].user_checks and _reachable(found[name])):
                    progress(name, found[name].status)
        reachable = {name: fleet[name] for name in fleet if _reachable(found[name])}
        extra = run_user_checks(reachable, config.path, folder, mask)
        results = {}
        for name, state in fleet.items():
            if not _reachable(found[name]):
                results[name] = _with_user_files_unrun(found[name], state)
                continue
            results[name] = _with_user_results(found[name], extra.get(name, ()), state.exceptions)
            if progress and state.user_checks:
                progress(name, results[name].status)
        return results
    finally:
        config.close()
        shutil.rmtree(folder, ignore_errors=True)


def _reachable(verification: HostVerification) -> bool:
    return verification.status != "unreachable"


def _with_user_results(
    found: HostVerification,
    extra: Sequence[CheckResult],
    exceptions: Sequence[ActiveException] = (),
) -> HostVerification:
    if not extra:
        return found
    results = (*found.results, *waive(extra, exceptions))
    return found.model_copy(update={"results": results, "status": host_status(results)})


def _with_user_files_unrun(found: HostVerification, state: DesiredState) -> HostVerification:
    """An unreachable host's own testinfra files, each one error (their tests are unknown)."""
    unrun = tuple(
        CheckResult(
            check_id=f"{check.policy}/{check.path}",
            title=f"{check.path} (from policy {check.policy})",
            status="error",
            expected="test passes",
            actual="not run",
            message=found.error or "",
            source="user",
            policy=check.policy,
            resource_id=check.path,
        )
        for check in state.user_checks
    )
    return found.model_copy(update={"results": (*found.results, *unrun)})


def _verify_host(
    state: DesiredState, config: SshConfig, mask: MaskFn, patching: PatchCheckData | None
) -> HostVerification:
    started = time.monotonic()
    target = state.host
    checks = plan_checks(state, patching)
    if patching is not None and state.exceptions:
        accepted = frozenset(risk for e in state.exceptions for risk in e.accept)
        patching = dataclasses.replace(patching, accepted=accepted)
    link = SshLink(config, target)
    try:
        outcomes = evaluate_checks(checks, link, patching)
    except LinkError as error:
        reason = f"unreachable: {error}"
        return HostVerification(
            host=target.name,
            ring=target.ring,
            status="unreachable",
            error=mask(reason),
            results=tuple(_errored(check, reason, mask) for check in checks),
            remote_commands=link.sessions,
            seconds=round(time.monotonic() - started, 3),
        )
    results = waive([outcome.result(mask) for outcome in outcomes], state.exceptions)
    return HostVerification(
        host=target.name,
        ring=target.ring,
        status=host_status(results),
        results=results,
        remote_commands=link.sessions,
        seconds=round(time.monotonic() - started, 3),
    )


def _errored(check: PlannedCheck, reason: str, mask: MaskFn) -> CheckResult:
    spec = check.spec
    return CheckResult(
        check_id=spec.id,
        title=mask(spec.title),
        status="error",
        expected=mask(spec.expected),
        actual="unknown",
        message=mask(reason),
        policy=spec.policy,
        resource_id=spec.resource_id,
    )


@dataclass
class Outcome:
    """One check as the final replay saw it."""

    check: PlannedCheck
    passed: bool | None  # None: the check could not be decided (error)
    actual: str
    evidence: list[tuple[str, Answer]]
    message: str = ""

    def result(self, mask: MaskFn) -> CheckResult:
        spec = self.check.spec
        status = "error" if self.passed is None else "passed" if self.passed else "failed"
        evidence = tuple(
            Evidence(
                command=mask(command),
                exit_status=answer.exit_status,
                stdout=mask(answer.stdout.decode(errors="replace")),
                stderr=mask(answer.stderr.decode(errors="replace")),
            )
            for command, answer in self.evidence
        )
        return CheckResult(
            check_id=spec.id,
            title=mask(spec.title),
            status=status,
            expected=mask(spec.expected),
            actual=mask(self.actual),
            message=mask(self.message),
            evidence=evidence,
            policy=spec.policy,
            resource_id=spec.resource_id,
        )


def evaluate_checks(
    checks: Sequence[PlannedCheck], link: BatchLink, patching: PatchCheckData | None = None
) -> list[Outcome]:
    """Discovery, batches and replay (see the module docstring). Raises LinkError."""
    answers: dict[str, Answer] = {}
    for _ in range(MAX_BATCHES):
        backend = CachedBackend(answers)
        outcomes = _run_checks(checks, backend, patching)
        if not backend.missing:
            return outcomes
        commands = list(dict.fromkeys(backend.missing))
        answers.update(zip(commands, link.run_batch(commands), strict=True))
    return _run_checks(checks, CachedBackend(answers, live=link), patching)


class CachedBackend(BaseBackend):
    """A testinfra backend answering from `answers`. A command not there is noted in `missing`
    and answered with a guess, or, with `live`, run on the host at once (and kept). Every
    command consumed goes to `consumed`, which the caller points at each check's evidence."""

    NAME = "ssh"

    def __init__(self, answers: dict[str, Answer], live: BatchLink | None = None) -> None:
        super().__init__("patchring-cache")
        self.answers = answers
        self.live = live
        self.missing: list[str] = []
        self.consumed: list[tuple[str, Answer]] = []

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        line = self.get_command(command, *args)
        answer = self.answers.get(line)
        if answer is None and self.live is not None:
            (answer,) = self.live.run_batch([line])
            self.answers[line] = answer
        if answer is None:
            self.missing.append(line)
            answer = DISCOVERY_GUESSES.get(line, UNKNOWN)
        else:
            self.consumed.append((line, answer))
        return self.result(answer.exit_status, self.encode(line), answer.stdout, answer.stderr)

    def decode(self, data: bytes) -> str:
        # testinfra would ask the host for its locale in one more command; Debian is UTF-8.
        return data.decode("utf-8", errors="replace")

    def encode(self, data: str) -> bytes:
        return data.encode("utf-8")


def _run_checks(
    checks: Sequence[PlannedCheck], backend: CachedBackend, patching: PatchCheckData | None
) -> list[Outcome]:
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    _learn_host(host, {_MODULES[check.probe.split(".")[0]] for check in checks})
    outcomes = []
    for check in checks:
        evidence: list[tuple[str, Answer]] = []
        backend.consumed = evidence
        try:
            if check.commands:
                passed, actual = _controller_check(host, check, patching)
            else:
                passed, actual = PROBES[check.probe](host, check.subject, check.want)
            outcomes.append(Outcome(check, passed, actual, evidence))
        except LinkError:
            raise
        except Exception as error:  # any testinfra failure is this check's error, not the run's
            message = f"{type(error).__name__}: {error}"
            outcomes.append(Outcome(check, None, "unknown", evidence, message))
    return outcomes


def _controller_check(
    host: Any, check: PlannedCheck, patching: PatchCheckData | None
) -> tuple[bool, str]:
    """A check decided on the controller: its commands run (batched like any other), their
    answers go to the pure evaluation."""
    if patching is None:
        raise RuntimeError(f"{check.spec.id}: no patch data to evaluate it with")
    outputs = []
    for command in check.commands:
        answer = host.run(command)
        outputs.append(CommandOutput(answer.rc, answer.stdout, answer.stderr))
    return evaluate_patch_check(check.spec.property, check.subject, outputs, patching)


# The testinfra module each kind of probe starts from.
_MODULES = {
    "baseline": "package",
    "package": "package",
    "patch": "package",
    "path": "file",
    "service": "service",
    "sysctl": "file",
    "user": "user",
    "group": "group",
    "command": "file",
    "setting": "file",
    "line": "file",
    "block": "file",
}


def _learn_host(host: Any, modules: set[str]) -> None:
    """What testinfra asks once per host (system facts, which class each module uses), so
    that it stays out of the first check's evidence."""
    try:
        host.system_info.sysinfo  # noqa: B018 (reading it runs and caches the commands)
        for module in sorted(modules):
            getattr(host, module)
    except LinkError:
        raise
    except Exception:  # a check meeting the same problem reports it
        return
