"""`run_step`: a remote step's deadline and the keepalive watchdog, with a stand-in connection
(greenlets, no hosts): a silent host is given up early, a busy one is waited for."""

from __future__ import annotations

from types import SimpleNamespace

import gevent
import pytest

from orchestrator.engine import session
from orchestrator.engine.session import HostLink, StepStopped, run_step
from orchestrator.model.desired import HostTarget


class _Transport:
    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.keepalives = 0

    def is_active(self) -> bool:
        return True

    def global_request(self, kind: str, wait: bool) -> None:
        self.keepalives += 1
        if not self.answers:
            gevent.sleep(3600)  # a frozen sshd: the reply never comes


def _link(answers: bool) -> tuple[HostLink, _Transport]:
    transport = _Transport(answers)
    client = SimpleNamespace(get_transport=lambda: transport)
    host = SimpleNamespace(connector=SimpleNamespace(client=client))
    target = HostTarget(name="web-01", address="10.0.0.1", connect_timeout=1)
    return HostLink(target=target, host=host), transport  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _short_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "SILENCE_MIN", 0.2)
    monkeypatch.setattr(session, "SILENCE_FACTOR", 0.2)


def test_a_silent_host_is_given_up_long_before_the_deadline() -> None:
    link, transport = _link(answers=False)
    with pytest.raises(StepStopped) as stopped:
        run_step(link, 'operation "files.put /etc/a.conf"', 300, lambda: gevent.sleep(3600))
    assert stopped.value.host_silent
    assert stopped.value.message == (
        'operation "files.put /etc/a.conf" stopped after 1 s: host not answering '
        "(no SSH reply within 0.2 s)"
    )
    assert transport.keepalives == 1


def test_a_busy_host_that_answers_keepalives_is_waited_for() -> None:
    link, transport = _link(answers=True)
    assert run_step(link, "probe", 300, lambda: gevent.sleep(2.2) or "done") == "done"
    assert transport.keepalives == 2


def test_a_step_past_its_deadline_says_so() -> None:
    link, _ = _link(answers=True)
    with pytest.raises(StepStopped) as stopped:
        run_step(link, "probe", 1.5, lambda: gevent.sleep(3600))
    assert (stopped.value.message, stopped.value.host_silent) == (
        "probe timed out after 1.5 s",
        False,
    )


def test_a_steps_own_error_passes_through() -> None:
    link, _ = _link(answers=True)

    def lost() -> None:
        raise EOFError("connection lost")

    with pytest.raises(EOFError, match="connection lost"):
        run_step(link, "probe", 10, lost)


def test_an_apt_failure_keeps_the_sentence_that_explains_it() -> None:
    from types import SimpleNamespace

    from orchestrator.engine.run import _failure_text

    apt = [
        "Reading package lists...",
        "Building dependency tree...",
        "Reading state information...",
        "Package acme-agent is not available, but is referred to by another package.",
        "This may mean that the package is missing, has been obsoleted, or",
        "is only available from another source",
        "E: Version '1.0-9' for 'acme-agent' was not found",
    ]
    output = SimpleNamespace(combined_lines=[SimpleNamespace(line=line) for line in apt])
    assert _failure_text(SimpleNamespace(_combined_output=output)).splitlines() == apt[3:]


def test_an_operation_refused_while_it_runs_stops_its_host_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Operations are generated when they run (not when added): what an operation raises
    then (a missing file, a bad fact) fails its host, naming the operation; later ones never
    run."""
    from orchestrator.compiler.opspec import OpSpec
    from orchestrator.engine import run
    from orchestrator.source import SourceLocation

    def refused(state: object, host: object, op_hash: str) -> bool:
        if op_hash == "first":
            raise OSError("No such file or directory: 'files/agent.conf'")
        raise AssertionError("a later operation ran")

    monkeypatch.setattr(run, "run_host_op", refused)
    link, _ = _link(answers=True)
    spec = OpSpec(
        operation="files.put",
        args={"dest": "/etc/agent.conf"},
        resource_ids=("file:/etc/agent.conf",),
        policy="app",
        location=SourceLocation(file="policies/app.yml", line=3, col=5),
        description="file /etc/agent.conf",
    )
    metas = [SimpleNamespace(_hash="first"), SimpleNamespace(_hash="second")]
    stopped = run._execute_host(SimpleNamespace(), link, [(spec, metas)])  # type: ignore[arg-type]
    assert stopped == run.Stopped(
        "first",
        'operation "files.put /etc/agent.conf" failed: '
        "No such file or directory: 'files/agent.conf'",
        host_silent=False,
    )
