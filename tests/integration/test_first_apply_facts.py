"""A first apply on fresh lab hosts: the facts the engine reads in one batch equal what pyinfra's
own fact classes read one by one, on a fresh host and on a converged one; a first apply with
the fact cache opens fewer remote sessions than one without it (a count, not a time); and the
engine's count of sessions is every SSH channel and file transfer paramiko saw."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Lab
from tests.integration.fleet import make_repo

pytestmark = pytest.mark.integration

# Runs in its own process: the engine needs gevent's monkey patching before anything imports
# sockets, as the `patchring` command does.
SCRIPT = """
from gevent import monkey
monkey.patch_all()
import json, sys
from collections import Counter
from pathlib import Path
import paramiko
from paramiko.sftp_client import SFTPClient
from pyinfra import context
from orchestrator.compiler import compile_host
from orchestrator.engine import run
from orchestrator.engine.facts import install_fact_cache, predicted_facts
from orchestrator.engine.session import open_session
from orchestrator.policy import WorktreeSource, load_project

repo, cached_host, uncached_host = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
desired = load_project(WorktreeSource(repo), "inventory").desired


def compare_facts(name):
    state = desired[name]
    requests = predicted_facts(compile_host(state))
    with open_session([state.host]) as session:
        host = session.links[name].host
        with context.ctx_state.use(session.state), context.ctx_host.use(host):
            # pyinfra's own reads first: reading a file may move its atime once
            real = [host.get_fact(cls, **kwargs) for cls, kwargs in requests]
            cache = install_fact_cache(host, requests)
            batched = [cache.get_fact(cls, **kwargs) for cls, kwargs in requests]
    differ = [
        f"{cls.name} {kwargs}: batch {b!r} != pyinfra {r!r}"
        for (cls, kwargs), r, b in zip(requests, real, batched)
        if r != b
    ]
    return {"facts": len(requests), "present": sum(r not in (None, False, {}, []) for r in real),
            "differ": differ, "reads": cache.reads}


# Every SSH channel and every file sent or fetched, per host address, counted below the engine.
seen = Counter()
open_channel, putfo, getfo = paramiko.Transport.open_channel, SFTPClient.putfo, SFTPClient.getfo


def counted_channel(transport, *args, **kwargs):
    seen[transport.getpeername()[0]] += 1
    return open_channel(transport, *args, **kwargs)


def counted_transfer(original):
    def transfer(sftp, *args, **kwargs):
        seen[sftp.get_channel().get_transport().getpeername()[0]] += 1
        return original(sftp, *args, **kwargs)
    return transfer


paramiko.Transport.open_channel = counted_channel
SFTPClient.putfo, SFTPClient.getfo = counted_transfer(putfo), counted_transfer(getfo)


def apply(name):
    seen.clear()
    result = run.apply_hosts({name: desired[name]})[name]
    return {"status": result.status, "sessions": result.remote_commands,
            "counted": seen[desired[name].host.address]}


out = {"fresh": compare_facts(cached_host), "cached": apply(cached_host)}
out["converged"] = compare_facts(cached_host)
out["again"] = apply(cached_host)
run.install_fact_cache = lambda host, predicted: None  # the engine as it was: no fact cache
out["uncached"] = apply(uncached_host)
print(json.dumps(out))
"""


def test_batched_facts_equal_pyinfra_and_a_first_apply_opens_fewer_sessions(
    tmp_path: Path, lab: Lab
) -> None:
    cached, uncached = lab.hosts[3], lab.hosts[4]
    lab.reset([cached, uncached])
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh={"command_timeout": 120})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(repo), cached, uncached],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=repo,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])

        for when in ("fresh", "converged"):
            compared = out[when]
            assert compared["differ"] == [], when
            assert compared["reads"] == 1  # every predicted fact in one remote command
            assert compared["facts"] >= 15
        # on the converged host the files, user, package and unit exist: real values compared
        assert out["converged"]["present"] > out["fresh"]["present"]

        assert out["cached"]["status"] == "changed"
        assert out["uncached"]["status"] == "changed"
        assert out["again"] == {"status": "unchanged", "sessions": 1, "counted": 1}
        assert out["cached"]["sessions"] < out["uncached"]["sessions"], out
        # the engine's count is every channel and transfer paramiko saw for the host
        assert out["cached"]["sessions"] == out["cached"]["counted"]
        assert out["uncached"]["sessions"] == out["uncached"]["counted"]
        print(f"first apply, sessions: {out['cached']} cached, {out['uncached']} uncached")
    finally:
        lab.reset([cached, uncached])
