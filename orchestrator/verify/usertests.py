"""Users' own pytest-testinfra files (a policy's `checks:`), run as pytest runs them.

Hosts that need the same files form a group; each group is one real pytest subprocess
(`python -m pytest FILES --hosts=ssh://ADDR,... --ssh-config=CFG --junitxml=OUT ...`) in a
folder of its own holding the files as the policy's project version has them, using the run's
ssh config (so the connections the generated checks opened are reused). The JUnit XML becomes
`CheckResult(source="user")` per host: id `<policy>/<file>::<test>`, testinfra's
`[ssh://addr]` parameter mapped back to the host's name, the commands testinfra logged as
evidence. A failed assertion is `failed`; an exception, a setup error, an uncollectable file
(syntax error) or a run that never finished is `error` with pytest's own words. Skipped tests
are left out (they checked nothing). Hosts with sudo run with testinfra's `--sudo`; a run with
sudo passwords also loads `verify.sudofeed`, which gets them on an inherited pipe. Imports
subprocess and the package's model; never testinfra.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from orchestrator.model.desired import DesiredState, UserCheckFile
from orchestrator.model.verification import CheckResult, CheckStatus, Evidence
from orchestrator.verify.sudofeed import FD_VARIABLE, encode_passwords

MaskFn = Callable[[str], str]
_BYTES = r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\""
_RUN_LOG = re.compile(
    rf"RUN CommandResult\(backend=<[^>]*>, exit_status=(-?\d+), command=({_BYTES}), "
    rf"_stdout=({_BYTES}), _stderr=({_BYTES})\)"
)


@dataclass(frozen=True)
class UserRun:
    """One pytest run: these files (with the policies naming each) on these hosts."""

    hosts: dict[str, str]  # address -> host name
    files: dict[str, tuple[UserCheckFile, ...]]  # path -> the same file as each policy names it
    timeout: float
    sudo: tuple[bool, str | None] = (False, None)  # testinfra's --sudo and --sudo-user
    sudo_passwords: dict[str, SecretStr] = field(default_factory=dict)  # address -> password


def plan_user_runs(fleet: Mapping[str, DesiredState]) -> list[UserRun]:
    """Group hosts by the set of files they need: one pytest run per group."""
    wanted: dict[tuple[str, str], list[str]] = {}
    files: dict[tuple[str, str], UserCheckFile] = {}
    for name, state in fleet.items():
        for check in state.user_checks:
            key = (check.policy, check.path)
            wanted.setdefault(key, []).append(name)
            files.setdefault(key, check)
    groups: dict[tuple[str, ...], list[UserCheckFile]] = {}
    for key, names in wanted.items():
        for sudo in dict.fromkeys(_sudo_of(fleet[name]) for name in names):  # one run per sudo
            same = tuple(name for name in names if _sudo_of(fleet[name]) == sudo)
            groups.setdefault(same, []).append(files[key])
    runs = []
    for hosts, checks in groups.items():
        by_path: dict[str, tuple[UserCheckFile, ...]] = {}
        for check in checks:
            by_path[check.path] = (*by_path.get(check.path, ()), check)
        runs.append(
            UserRun(
                hosts={fleet[h].host.address: h for h in hosts},
                files=by_path,
                timeout=max(fleet[h].host.command_timeout for h in hosts),
                sudo=_sudo_of(fleet[hosts[0]]),
                sudo_passwords={
                    fleet[h].host.address: password
                    for h in hosts
                    if (password := fleet[h].host.sudo_password) is not None
                },
            )
        )
    return runs


def _sudo_of(state: DesiredState) -> tuple[bool, str | None]:
    return state.host.sudo, state.host.sudo_user


def run_user_checks(
    fleet: Mapping[str, DesiredState], ssh_config: Path, folder: Path, mask: MaskFn
) -> dict[str, list[CheckResult]]:
    """Results per host name for every policy `checks:` file of the hosts in `fleet`."""
    runs = plan_user_runs(fleet)
    found: dict[str, list[CheckResult]] = {}
    if not runs:
        return found

    def one(item: tuple[int, UserRun]) -> list[tuple[str, CheckResult]]:
        index, run = item
        return run_pytest(run, ssh_config, folder / f"user-{index}", mask)

    with ThreadPoolExecutor(max_workers=min(4, len(runs))) as pool:
        for pairs in pool.map(one, enumerate(runs)):
            for host, result in pairs:
                found.setdefault(host, []).append(result)
    return found


def pytest_argv(run: UserRun, ssh_config: Path, junit: Path, ini: Path) -> list[str]:
    hosts = ",".join(f"ssh://{address}" for address in run.hosts)
    return [
        sys.executable, "-m", "pytest", *run.files, f"--hosts={hosts}",
        f"--ssh-config={ssh_config}", f"--junitxml={junit}", "-p", "no:cacheprovider", "-q",
        "-c", str(ini), "--rootdir", str(ini.parent), "--import-mode=importlib",
        "--continue-on-collection-errors", "-o", "junit_family=xunit1",
        "-o", "junit_logging=log", "--log-level=DEBUG", "-o", "log_format=%(message)s",
        *(["--sudo"] if run.sudo[0] else []),
        *(["--sudo-user", run.sudo[1]] if run.sudo[0] and run.sudo[1] else []),
        *(["-p", "orchestrator.verify.sudofeed"] if run.sudo[0] and run.sudo_passwords else []),
    ]  # fmt: skip


def run_pytest(
    run: UserRun, ssh_config: Path, folder: Path, mask: MaskFn
) -> list[tuple[str, CheckResult]]:
    """Write the files, run pytest on them, and read its JUnit XML back."""
    for path, (check, *_) in run.files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(check.content)
    ini = folder / "pytest.ini"
    ini.write_text("[pytest]\n")
    junit, log = folder / "junit.xml", folder / "pytest.log"
    argv = pytest_argv(run, ssh_config, junit, ini)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out, _password_pipe(run) as (inherited, send_passwords):
        if inherited:
            env[FD_VARIABLE] = str(inherited[0])
        proc = subprocess.Popen(
            argv, cwd=folder, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, pass_fds=inherited,
        )  # fmt: skip
        send_passwords()
        try:
            proc.wait(timeout=run.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pytest and the ssh clients it started
            proc.wait()
            return _whole_run_failed(run, f"pytest did not finish within {run.timeout:g} s", mask)
    try:
        tree = ET.parse(junit)
    except (OSError, ET.ParseError):
        said = log.read_text(errors="replace").strip().splitlines()[-15:]
        reason = f"pytest exited with status {proc.returncode}: " + "\n".join(said)
        return _whole_run_failed(run, reason.replace(f"{folder}/", ""), mask)
    return [
        pair
        for case in tree.iter("testcase")
        for pair in read_testcase(case, run, str(folder) + "/", mask)
    ]


@contextlib.contextmanager
def _password_pipe(run: UserRun) -> Iterator[tuple[tuple[int, ...], Callable[[], None]]]:
    """(the descriptors for pytest to inherit, a function that sends the run's sudo passwords
    on them once pytest started); nothing without passwords. Written after the start, so no
    number of hosts can fill the pipe before its reader runs; never in argv or environment."""
    if not (run.sudo[0] and run.sudo_passwords):
        yield (), lambda: None
        return
    data = encode_passwords({a: p.get_secret_value() for a, p in run.sudo_passwords.items()})
    read_end, write_end = os.pipe()
    unsent = [read_end, write_end]  # closed once each: other runs' threads reuse the numbers

    def send() -> None:
        os.close(unsent.pop(0))  # pytest holds its own copy of the read end
        with contextlib.suppress(BrokenPipeError), os.fdopen(unsent.pop(), "wb") as writer:
            writer.write(data)

    try:
        yield (read_end,), send
    finally:
        for descriptor in unsent:
            os.close(descriptor)


def _whole_run_failed(run: UserRun, reason: str, mask: MaskFn) -> list[tuple[str, CheckResult]]:
    return [
        (host, _result(check, check.path, "error", reason.splitlines()[0], reason, (), mask))
        for host in run.hosts.values()
        for checks in run.files.values()
        for check in checks
    ]


def read_testcase(
    case: ET.Element, run: UserRun, folder: str, mask: MaskFn
) -> list[tuple[str, CheckResult]]:
    """One JUnit testcase as a result for each host it ran on (every host of the run when the
    test does not use the `host` fixture)."""
    path = case.get("file", "")
    if path not in run.files or case.find("skipped") is not None:
        return []
    test, hosts = _test_and_hosts(case, path, run)
    status, actual, message = _verdict(case, folder)
    evidence = _evidence(case)
    return [
        (host, _result(check, test, status, actual, message, evidence, mask))
        for host in hosts
        for check in run.files[path]
    ]


def _test_and_hosts(case: ET.Element, path: str, run: UserRun) -> tuple[str, list[str]]:
    """`file::Class::test[params]` without testinfra's host parameter, and the hosts it ran on.
    A collection error names the module: its id is the file alone."""
    classname, name = case.get("classname", ""), case.get("name", "")
    if not classname:
        return path, list(run.hosts.values())
    module = path.removesuffix(".py").replace("/", ".")
    within = classname[len(module) + 1 :].replace(".", "::") if classname != module else ""
    base, _, params = name.partition("[")
    parts = params.removesuffix("]").split("-") if params else []
    for address, host in sorted(run.hosts.items(), key=lambda item: -len(item[0])):
        token = f"ssh://{address}".split("-")
        for start in range(len(parts) - len(token) + 1):
            if parts[start : start + len(token)] == token:
                rest = parts[:start] + parts[start + len(token) :]
                shown = base + (f"[{'-'.join(rest)}]" if rest else "")
                test = "::".join(filter(None, (path, within, shown)))
                return test, [host]
    return "::".join(filter(None, (path, within, name))), list(run.hosts.values())


def _verdict(case: ET.Element, folder: str) -> tuple[CheckStatus, str, str]:
    """(status, actual, message): a failed assertion fails; anything else raised is an error."""
    failure, error = case.find("failure"), case.find("error")
    if failure is None and error is None:
        return "passed", "passed", ""
    node = failure if failure is not None else error
    assert node is not None
    said = (node.get("message") or "").replace(folder, "")
    text = (node.text or "").replace(folder, "")
    if failure is not None and said.startswith(("AssertionError", "assert ")):
        return "failed", said, text
    short = textwrap.dedent("\n".join(line[2:] for line in text.splitlines() if line[:2] == "E "))
    return "error", short.strip() or said, text


def _evidence(case: ET.Element) -> tuple[tuple[str, int, bytes, bytes], ...]:
    """The commands testinfra logged (its DEBUG `RUN` lines), the remote command unwrapped
    from the ssh command line."""
    text = "".join(node.text or "" for node in case.iter("system-out"))
    found = []
    for status, command, stdout, stderr in _RUN_LOG.findall(text):
        line = ast.literal_eval(command).decode(errors="replace")
        if line.startswith("ssh "):  # testinfra's ssh backend logs the whole ssh command line
            with contextlib.suppress(ValueError):
                line = shlex.split(line)[-1]
        found.append((line, int(status), ast.literal_eval(stdout), ast.literal_eval(stderr)))
    return tuple(found)


def _result(
    check: UserCheckFile,
    test: str,
    status: CheckStatus,
    actual: str,
    message: str,
    evidence: Sequence[tuple[str, int, bytes, bytes]],
    mask: MaskFn,
) -> CheckResult:
    return CheckResult(
        check_id=f"{check.policy}/{test}",
        title=f"{test} (from policy {check.policy})",
        status=status,
        expected="test passes",
        actual=mask(actual),
        message=mask(message),
        evidence=tuple(
            Evidence(
                command=mask(command),
                exit_status=code,
                stdout=mask(out.decode(errors="replace")),
                stderr=mask(err.decode(errors="replace")),
            )
            for command, code, out, err in evidence
        ),
        source="user",
        policy=check.policy,
        resource_id=check.path,
    )
