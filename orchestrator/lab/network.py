"""The lab network: a guard route, a bridge in the root namespace, one namespace + veth per host.

The guard route (`unreachable <subnet> metric 4000`) goes in first and stays after `lab down`, so
traffic to the lab subnet fails here instead of leaving the machine when no bridge is up. Hosts
get no default route: they reach only the bridge address and each other. Everything is done with
`ip` argv lists. Imports only `orchestrator.errors` and sibling modules.
"""

from __future__ import annotations

import ipaddress
import json
import re

from orchestrator.errors import LabError

from .config import HostPlan
from .system import run_command

GUARD_METRIC = 4000


def install_guard_route(subnet: str) -> None:
    run_command(["ip", "route", "replace", "unreachable", subnet, "metric", str(GUARD_METRIC)])


def subnet_conflicts(network: ipaddress.IPv4Network, own_bridge: str) -> list[str]:
    """Routes and addresses that already use this subnet (guard routes and our bridge aside)."""
    conflicts: list[str] = []
    routes = json.loads(run_command(["ip", "-j", "-4", "route", "show"]).stdout or "[]")
    for route in routes:
        destination = route.get("dst", "")
        if destination in ("default", "") or route.get("dev") == own_bridge:
            continue
        if route.get("type") == "unreachable" and route.get("metric") == GUARD_METRIC:
            continue
        try:
            other = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        if other.overlaps(network):
            conflicts.append(f"route {destination} via {route.get('dev', route.get('type', '?'))}")
    links = json.loads(run_command(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in links:
        if link.get("ifname") == own_bridge:
            continue
        for info in link.get("addr_info", []):
            interface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            if interface.network.overlaps(network):
                conflicts.append(f"address {interface} on {link.get('ifname')}")
    return conflicts


def create_bridge(bridge: str, address: str, prefixlen: int) -> None:
    run_command(
        [
            "ip",
            "link",
            "add",
            "name",
            bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ]
    )
    run_command(["ip", "addr", "add", f"{address}/{prefixlen}", "dev", bridge])
    run_command(["ip", "link", "set", bridge, "up"])


def create_host_link(plan: HostPlan, bridge: str, prefixlen: int) -> None:
    """The host's namespace, with eth0 at its address and a veth peer in the bridge."""
    run_command(["ip", "netns", "add", plan.netns])
    run_command(
        [
            "ip",
            "link",
            "add",
            plan.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            plan.netns,
        ]
    )
    run_command(["ip", "link", "set", plan.veth, "master", bridge, "up"])
    batch = f"addr add {plan.address}/{prefixlen} dev eth0\nlink set eth0 up\nlink set lo up\n"
    run_command(["ip", "-n", plan.netns, "-batch", "-"], input_text=batch)


def set_link_up(veth: str, up: bool) -> None:
    run_command(["ip", "link", "set", veth, "up" if up else "down"])


def link_names() -> set[str]:
    links = json.loads(run_command(["ip", "-j", "link", "show"]).stdout or "[]")
    return {link["ifname"] for link in links}


def netns_names() -> set[str]:
    result = run_command(["ip", "-j", "netns", "list"])
    return {item["name"] for item in json.loads(result.stdout or "[]")}


def find_lab_links(bridge: str, veth: re.Pattern[str]) -> list[str]:
    return sorted(name for name in link_names() if name == bridge or veth.match(name))


def find_lab_netns(pattern: re.Pattern[str]) -> list[str]:
    return sorted(name for name in netns_names() if pattern.match(name))


def remove_network(links: list[str], namespaces: list[str]) -> None:
    """Delete veths and the bridge, then the namespaces, in one `ip -batch` (errors tolerated)."""
    lines = [f"link del {name}" for name in links] + [f"netns del {name}" for name in namespaces]
    if lines:
        run_command(
            ["ip", "-force", "-batch", "-"], input_text="\n".join(lines) + "\n", check=False
        )


def lab_bridge_exists(bridge: str) -> bool:
    return bridge in link_names()


def ensure_bridge_is_free(bridge: str, lab: str) -> None:
    if lab_bridge_exists(bridge):
        raise LabError(
            f"the bridge {bridge} of lab {lab!r} exists, but this lab's state does not own it",
            hint=f"another state directory may run a lab named {lab!r}: stop that one first",
        )
