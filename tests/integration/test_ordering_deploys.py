"""`after:` ordering and a deploy from the policy repository, converged on two real lab hosts.

The policy writes a systemd drop-in before the agent package is installed (`after:` on the
package), so the package's postinst (daemon-reload, restart) already reads it: the drop-in keeps
the unit from starting until /etc/acme/enabled exists and gives it an environment variable. The
service resource then starts it, and a command `after: [service:acme-agent]` records whether it
was running: in the default order (commands before services) it would record "inactive".
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Lab
from tests.integration.fleet import commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

DROP_IN = "/etc/systemd/system/acme-agent.service.d/10-patchring.conf"
BANNER_DEPLOY = '''\
"""A deploy of this policy repository (not installed with patchring): a login banner."""

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files


@deploy("Login banner")
def configure_banner(text: str, mode: str = "644") -> None:
    files.put(name="Write /etc/issue.net", src=StringIO(text + "\\n"), dest="/etc/issue.net",
              mode=mode)
'''


def _changes(doc: dict, name: str) -> list[str]:
    entry = next(h for h in doc["hosts"] if h["host"] == name)
    return [c["resource_id"] for c in entry["changes"]]


@pytest.fixture
def hosts(lab: Lab) -> Iterator[list[str]]:
    chosen = lab.hosts[:2]
    lab.reset(chosen)
    yield chosen
    lab.reset(chosen)


def _repo(tmp_path: Path, lab: Lab, chosen: list[str]) -> Path:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh={"command_timeout": 90})
    for name in ("acme-agent.yml", "hardening.yml"):
        (repo / "policies" / name).unlink()
    (repo / "deploys" / "site").mkdir(parents=True)
    (repo / "deploys" / "site" / "banner.py").write_text(BANNER_DEPLOY)
    write_yaml(repo / "policies" / "ordered.yml", {
        "name": "ordered", "select": {"hosts": chosen},
        "files": [
            {"path": DROP_IN, "content": "[Unit]\nConditionPathExists=/etc/acme/enabled\n"
                                         "[Service]\nEnvironment=ACME_PRESEEDED=1\n"},
            {"path": "/etc/acme/enabled", "content": "yes\n"},
        ],
        "packages": [{"name": "acme-agent", "version": "1.0-2", "after": [f"file:{DROP_IN}"]}],
        "services": [{"name": "acme-agent"}],
        "commands": [{"name": "agent-state", "after": ["service:acme-agent"],
                      "run": "systemctl is-active acme-agent > /var/tmp/agent-state || true",
                      "creates": "/var/tmp/agent-state"}],
        "deploy": [{"name": "banner", "use": "site.banner:configure_banner",
                    "args": {"text": "{{ host.name }} in ring {{ host.ring }}"}}],
    })  # fmt: skip
    commit(repo, "ordered policy and a repository deploy")
    return repo


def test_after_orders_a_real_converge_and_a_repo_deploy_runs(
    tmp_path: Path, lab: Lab, hosts: list[str]
) -> None:
    repo = _repo(tmp_path, lab, hosts)
    only = [arg for name in hosts for arg in ("--host", name)]
    plan = patchring(repo, "plan", "--json", *only)
    assert plan.code == 0, plan.stderr
    assert _changes(plan.json(), hosts[0]) == [
        "apt_repository:patchring-lab",
        f"file:{DROP_IN}",
        "package:acme-agent",
        "file:/etc/acme/enabled",
        "deploy:banner",
        "service:acme-agent",
        "command:agent-state",
    ]
    applied = patchring(repo, "apply", "--json", *only)
    assert applied.code == 0, applied.stderr
    for name in hosts:
        h = host(lab.address(name), lab.ssh_config)
        assert h.file("/var/tmp/agent-state").content_string == "active\n"
        pid = h.check_output("systemctl show -p MainPID --value acme-agent")
        assert "ACME_PRESEEDED=1" in h.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
        ring = next(s.ring for s in lab.status.hosts if s.name == name)
        assert h.file("/etc/issue.net").content_string == f"{name} in ring {ring}\n"
    verified = patchring(repo, "verify", "--json", *only)
    assert verified.code == 0, verified.stdout + verified.stderr
    again = patchring(repo, "apply", "--json", *only)
    assert again.code == 0, again.stderr
    assert {r["status"] for r in again.json()["hosts"]} == {"unchanged"}, again.stdout
    assert patchring(repo, "plan", "--detailed-exitcode", *only).code == 0


def test_a_repo_deploy_is_checked_against_its_signature_before_any_host(
    tmp_path: Path, lab: Lab
) -> None:
    repo = _repo(tmp_path, lab, lab.hosts[:2])
    shutil.rmtree(repo / "deploys")
    result = patchring(repo, "validate")
    assert result.code == 1
    assert (
        "policies/ordered.yml:" in result.stderr
        and "deploy module 'site.banner' not found: no deploys/site/banner.py" in result.stderr
    )
