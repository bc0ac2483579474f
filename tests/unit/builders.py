"""Small builders for desired states in unit tests (no YAML, no hosts)."""

from __future__ import annotations

from orchestrator.model.desired import KIND_ORDER, DesiredState, HostTarget, Resource, Spec
from orchestrator.model.policy import (
    AptRepository,
    Block,
    Command,
    Deploy,
    Directory,
    File,
    Group,
    LineEdit,
    Package,
    Patch,
    Service,
    Setting,
    Sysctl,
    User,
)
from orchestrator.policy.conflicts import resource_key
from orchestrator.source import SourceLocation

_KIND = {
    AptRepository: ("apt_repository", lambda s: s.name),
    Package: ("package", lambda s: s.name),
    Patch: ("patch", lambda s: f"{s.advisory}/{s.package}"),
    File: ("file", lambda s: s.path),
    Directory: ("directory", lambda s: s.path),
    Service: ("service", lambda s: s.name),
    Sysctl: ("sysctl", lambda s: s.key),
    Group: ("group", lambda s: s.name),
    User: ("user", lambda s: s.name),
    Command: ("command", lambda s: s.name),
    Deploy: ("deploy", lambda s: s.name),
    LineEdit: ("line", lambda s: resource_key("line", s)),
    Setting: ("setting", lambda s: resource_key("setting", s)),
    Block: ("block", lambda s: resource_key("block", s)),
}


def resource(
    spec: Spec, policy: str = "base", line: int = 1, content: str | None = None
) -> Resource:
    kind, key = _KIND[type(spec)]
    if isinstance(spec, File | Block) and content is None:
        content = spec.content
    return Resource(
        kind=kind,
        key=key(spec),
        policy=policy,
        spec=spec,
        content=content,
        location=SourceLocation(f"policies/{policy}.yml", line, 3),
    )


def desired(*specs: Spec, host: str = "web-01") -> DesiredState:
    resources = sorted(
        (resource(s, line=i + 1) for i, s in enumerate(specs)),
        key=lambda r: KIND_ORDER.index(r.kind),
    )
    return DesiredState(host=HostTarget(name=host, address="10.0.0.1"), resources=tuple(resources))


AGENT_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"


def reference_state() -> DesiredState:
    """A small but complete state: one resource of every kind the engine converges."""
    return desired(
        AptRepository(name="lab", url="http://10.213.0.1:8080/", suite="lab", key=AGENT_KEY),
        Package(name="acme-agent", version="1.0-2"),
        Package(name="acme-tool"),
        Package(name="telnet", state="absent"),
        Patch(advisory="DSA-9001-1", cves=("CVE-2026-10001",), package="openssl", fixed="3.0.15-1"),
        File(
            path="/etc/acme/agent.conf",
            content="port = 7070\n",
            mode="0640",
            restart=("acme-agent",),
        ),
        Directory(path="/var/lib/acme"),
        Service(name="acme-agent"),
        Sysctl(key="net.ipv4.conf.all.send_redirects", value="0"),
        User(name="acme", system=True, home="/var/lib/acme", shell="/usr/sbin/nologin"),
        Command(name="motd", run="echo managed > /etc/motd.d/acme", creates="/etc/motd.d/acme"),
    )
