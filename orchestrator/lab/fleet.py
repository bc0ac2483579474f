"""Bring a lab up, report on it, publish to its repository, take it down: the public `lab_up`,
`lab_status`, `lab_publish`, `lab_down`.

`lab_up` checks the machine, installs the guard route before touching the network, builds (or
reuses) the base image of each Debian release it boots, the signed apt repository and the
security tracker fixture, then starts every host in parallel and waits until each sshd sends its
banner; on any failure it takes down what it started. The record in `state.json` lets any later
process find the lab again. `lab_down` stops hosts by PID
and cgroup (a clean poweroff, then SIGKILL), removes the network, and verifies that nothing is
left, raising a LabError that lists any leftover. Imports only `orchestrator.errors` and siblings.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import LabError, LabNotRunningError

from . import cgroups, hosts, network
from .aptrepo import build_repository, make_package, publish, publish_packages, start_http_server
from .cgroups import CgroupRoots
from .config import (
    HostPlan,
    LabConfig,
    LabHost,
    LabStatus,
    apt_url,
    bridge_address,
    bridge_name,
    cache_dir_for,
    netns_pattern,
    plan_hosts,
    state_dir_for,
    validate_config,
    validate_name,
    veth_pattern,
)
from .image import ensure_base_image
from .inventory_file import render_inventory, write_inventory
from .state import (
    HostRecord,
    LabPaths,
    LabRecord,
    ProcessRecord,
    down_hint,
    load_record,
    require_record,
    save_record,
    up_hint,
)
from .system import (
    lab_lock,
    process_alive,
    raise_sysctl,
    require_commands,
    require_overlayfs,
    require_root,
)
from .tracker import write_security_data

Progress = Callable[[str], None]


def lab_up(config: LabConfig, progress: Progress | None = None) -> LabStatus:
    """Boot the lab (or return the status of the same lab already running)."""
    report: Progress = progress or (lambda _message: None)
    subnet = validate_config(config)
    plans = plan_hosts(config)
    require_root()
    require_commands()
    require_overlayfs()
    paths = LabPaths(state_dir_for(config.name, config.state_dir))
    roots = cgroups.find_roots()
    bridge = bridge_name(config.name)
    with lab_lock():
        record = load_record(paths)
        if record is not None:
            if any(
                hosts.host_state(host, roots, record.name) != "stopped"
                for host in record.host_records
            ):
                return _already_running(config, paths, record, roots)
            report(f"cleaning up lab {config.name!r}, which did not stop cleanly")
            _teardown(config.name, paths, record, roots)
        network.ensure_bridge_is_free(bridge, config.name)
        if network.find_lab_netns(netns_pattern(config.name)):
            raise LabError(
                f"network namespaces of a lab named {config.name!r} exist, "
                f"but {paths.root} does not own them",
                hint=down_hint(config.name) + " with the state directory that started it",
            )
        conflicts = network.subnet_conflicts(subnet, bridge)
        if conflicts:
            raise LabError(
                f"subnet {config.subnet} is already in use: {'; '.join(conflicts)}",
                hint="choose another subnet for the lab, or stop whatever uses it",
            )
        network.install_guard_route(config.subnet)
        try:
            return _boot(config, paths, plans, roots, report)
        except BaseException:
            report("lab up failed; stopping what it started")
            with contextlib.suppress(Exception):
                _teardown(config.name, paths, load_record(paths), roots)
            raise


def _already_running(
    config: LabConfig, paths: LabPaths, record: LabRecord, roots: CgroupRoots
) -> LabStatus:
    releases = tuple(host.release for host in record.host_records)
    if not record.same_shape(config):
        raise LabError(
            f"lab {config.name!r} is already running with {record.hosts} hosts on {record.subnet}",
            hint=down_hint(config.name) + " first, then start it again with the new settings",
        )
    if releases != tuple(plan.release for plan in plan_hosts(config)):
        raise LabError(
            f"lab {config.name!r} is already running with other Debian releases "
            f"({', '.join(f'{h.name} {h.release}' for h in record.host_records)})",
            hint=down_hint(config.name) + " first, then start it again with the new settings",
        )
    inventory = (
        str(Path(config.inventory_path).absolute())
        if config.inventory_path
        else record.inventory_path
    )
    if inventory != record.inventory_path:
        record = _replace_inventory_path(record, inventory)
        save_record(paths, record)
    status = _status(paths, record, roots)
    if config.inventory_path is not None:
        _write_inventory(paths, status)
    return status


def _boot(
    config: LabConfig,
    paths: LabPaths,
    plans: tuple[HostPlan, ...],
    roots: CgroupRoots,
    report: Progress,
) -> LabStatus:
    subnet = validate_config(config)
    raise_sysctl("fs/inotify/max_user_instances", 8192)
    raise_sysctl("fs/inotify/max_user_watches", 524288)
    images = {
        release: ensure_base_image(cache_dir_for(config.cache_dir), report, release)
        for release in sorted({plan.release for plan in plans})
    }
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.root.chmod(0o700)
    for directory in (paths.logs, paths.run):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    client_key = hosts.ensure_client_key(paths, config.name)
    hosts.install_runner(paths)
    report("building the lab's signed apt repository")
    build_repository(paths, config.name)
    write_security_data(paths.security_data)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda plan: hosts.ensure_host_identity(paths, plan.name), plans))
    hosts.write_known_hosts(paths, plans)
    record = LabRecord(
        name=config.name,
        hosts=config.hosts,
        subnet=config.subnet,
        rings=tuple(config.rings),
        apt_port=config.apt_port,
        bridge=bridge_name(config.name),
        base_images={release: str(image) for release, image in images.items()},
        inventory_path=str(Path(config.inventory_path).absolute())
        if config.inventory_path
        else None,
        host_records=tuple(_host_record(plan, None) for plan in plans),
        http=None,
    )
    save_record(paths, record)  # from here on, `lab down` can clean up even if this process dies
    network.create_bridge(record.bridge, bridge_address(subnet), subnet.prefixlen)
    http_dirs = cgroups.unit_dirs(roots, config.name, "apt-http")
    cgroups.create(http_dirs)
    http = start_http_server(paths, bridge_address(subnet), config.apt_port, http_dirs)
    record = _with(record, http=http)
    save_record(paths, record)
    report(f"starting {len(plans)} hosts")

    def start(plan: HostPlan) -> HostRecord:
        network.create_host_link(plan, record.bridge, subnet.prefixlen)
        base = images[plan.release]
        hosts.prepare_upper(paths, base, plan, plans, client_key)
        return _host_record(plan, hosts.start_host(paths, base, plan, roots, config.name))

    with ThreadPoolExecutor(max_workers=min(16, len(plans))) as pool:
        records = list(pool.map(start, plans))
    record = _with(record, host_records=tuple(records))
    save_record(paths, record)
    report("waiting for sshd on every host")
    hosts.wait_for_sshd(paths, records, timeout=60.0 + 2.0 * len(plans))
    status = _status(paths, record, roots)
    if config.inventory_path is not None:
        _write_inventory(paths, status)
    report(f"lab {config.name!r} is up: {len(plans)} hosts on {config.subnet}")
    return status


def lab_status(name: str = "lab", state_dir: Path | None = None) -> LabStatus:
    """The lab's hosts as they are now (state from PIDs and cgroups, ssh from the banner)."""
    validate_name(name)
    paths = LabPaths(state_dir_for(name, state_dir))
    record = require_record(paths, name)
    return _status(paths, record, cgroups.find_roots())


def lab_publish(
    package: str,
    version: str,
    suite: str = "lab",
    *,
    name: str = "lab",
    state_dir: Path | None = None,
    broken: bool = False,
) -> tuple[str, ...]:
    """Publish a new version of a test package to a suite of the running lab's repository.

    `suite` is a distribution (`lab`, `broken`, `bookworm-security`, ...) or `lab-security`
    (the security distribution of every release). Returns the distributions changed; hosts see
    the version after `apt-get update`.
    """
    validate_name(name)
    require_root()
    paths = LabPaths(state_dir_for(name, state_dir))
    require_record(paths, name)
    return publish(paths, name, package, version, suite, broken=broken)


def lab_publish_many(
    packages: Sequence[tuple[str, str]],
    suite: str = "lab",
    *,
    name: str = "lab",
    state_dir: Path | None = None,
) -> tuple[str, ...]:
    """Publish many (package, version) pairs at once: the suite is indexed and signed once.

    The names are test packages or fillers (`acme-filler-1`, `acme-filler-2`, ...: one small
    file each), for hosts with as many packages as a real server.
    """
    validate_name(name)
    require_root()
    paths = LabPaths(state_dir_for(name, state_dir))
    require_record(paths, name)
    built = [make_package(package, version) for package, version in packages]
    return publish_packages(paths, name, built, suite)


def lab_down(name: str = "lab", state_dir: Path | None = None) -> Path | None:
    """Stop the lab and verify that nothing is left; LabError lists any leftover. Removes the
    inventory file `lab up` wrote (still unedited) and returns its path, so that no command
    goes on planning against hosts that are gone."""
    validate_name(name)
    require_root()
    require_commands(["ip"])
    paths = LabPaths(state_dir_for(name, state_dir))
    roots = cgroups.find_roots()
    with lab_lock():
        record = load_record(paths)
        if record is None and not _leftovers(name, paths, None, roots, check_mounts=False):
            raise LabNotRunningError(f"lab {name!r} is not running", hint=up_hint(name))
        leftovers = _teardown(name, paths, record, roots)
    if leftovers:
        raise LabError(
            f"lab {name!r} did not stop cleanly; left: " + "; ".join(leftovers),
            hint="run `patchring lab down` again; if that does not help, remove these by hand",
        )
    return _remove_lab_inventory(name, record.inventory_path if record else None)


def _remove_lab_inventory(name: str, path: str | None) -> Path | None:
    """Remove the inventory `lab up` wrote for this lab, unless someone has made it their own
    (its first line is no longer the one `lab up` writes)."""
    if path is None:
        return None
    inventory = Path(path)
    try:
        with inventory.open(encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith(f'# Written by `patchring lab up` for the lab "{name}".'):
        return None
    inventory.unlink(missing_ok=True)
    return inventory


def _teardown(
    name: str, paths: LabPaths, record: LabRecord | None, roots: CgroupRoots
) -> list[str]:
    """Stop everything of the lab, known from its record or found by name; returns leftovers."""
    lab_tree = cgroups.lab_dirs(roots, name)
    names = {host.name for host in record.host_records} if record else set()
    if lab_tree[0].is_dir():
        names |= {
            child.name
            for child in lab_tree[0].iterdir()
            if child.is_dir() and child.name != "apt-http"
        }
    hosts.stop_hosts(paths, sorted(names), roots, name)
    http_dirs = cgroups.unit_dirs(roots, name, "apt-http")
    http = record.http if record else None
    if http and process_alive(http.pid, http.start_time) and http.pid in cgroups.pids_in(http_dirs):
        os.kill(http.pid, signal.SIGTERM)
        cgroups.wait_empty(http_dirs, 3.0)
    for directory in lab_tree:
        cgroups.thaw_tree(directory)
    if not cgroups.wait_empty(lab_tree, 0.0):
        cgroups.kill(lab_tree)
        cgroups.wait_empty(lab_tree, 5.0)
    cgroups.remove(lab_tree)
    for directory in lab_tree:
        with contextlib.suppress(OSError):
            directory.parent.rmdir()  # the shared `patchring` cgroup, once no lab uses it
    bridge = record.bridge if record else bridge_name(name)
    links = network.find_lab_links(bridge, veth_pattern(name))
    network.remove_network(links, network.find_lab_netns(netns_pattern(name)))
    leftovers = _leftovers(name, paths, record, roots, check_mounts=True)
    if not any(item.startswith(("process", "mount")) for item in leftovers):
        for directory in (paths.hosts, paths.apt_repo, paths.run):
            shutil.rmtree(directory, ignore_errors=True)
        paths.security_data.unlink(missing_ok=True)
    if not leftovers:
        paths.state_file.unlink(missing_ok=True)
    return leftovers


def _leftovers(
    name: str, paths: LabPaths, record: LabRecord | None, roots: CgroupRoots, *, check_mounts: bool
) -> list[str]:
    found: list[str] = []
    lab_tree = cgroups.lab_dirs(roots, name)
    for pid in sorted(cgroups.pids_in(lab_tree)):
        found.append(f"process {pid} in {lab_tree[0]}")
    if record:
        daemons = [(host.name, host.runner) for host in record.host_records] + [
            ("apt-http", record.http)
        ]
        for label, process in daemons:
            if process and process_alive(process.pid, process.start_time):
                found.append(f"process {process.pid} ({label})")
    found += [f"cgroup {directory}" for directory in lab_tree if directory.exists()]
    bridge = record.bridge if record else bridge_name(name)
    found += [f"link {link}" for link in network.find_lab_links(bridge, veth_pattern(name))]
    found += [f"netns {ns}" for ns in network.find_lab_netns(netns_pattern(name))]
    if check_mounts:
        found += [f"mount {mount}" for mount in _mounts_under(paths.hosts)]
    return found


def _mounts_under(directory: Path) -> list[str]:
    """Mounts, in any process's mount namespace, whose line names this directory."""
    needle = str(directory.resolve()) + "/"
    found: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "mountinfo").read_text().splitlines():
                if needle in line:
                    found.add(f"{line.split()[4]} (pid {entry.name})")
    return sorted(found)


def _status(paths: LabPaths, record: LabRecord, roots: CgroupRoots) -> LabStatus:
    states = [hosts.host_state(host, roots, record.name) for host in record.host_records]

    def ssh_ok(item: tuple[HostRecord, str]) -> bool:
        host, state = item
        return state == "running" and hosts.probe_sshd(host.address, timeout=1.0)

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(states)))) as pool:
        answers = list(pool.map(ssh_ok, zip(record.host_records, states, strict=True)))
    subnet = validate_config(
        LabConfig(name=record.name, hosts=record.hosts, subnet=record.subnet, rings=record.rings)
    )
    return LabStatus(
        name=record.name,
        subnet=record.subnet,
        hosts=tuple(
            LabHost(
                name=h.name,
                address=h.address,
                ring=h.ring,
                groups=h.groups,
                state=state,
                ssh_ok=ok,
                release=h.release,
            )
            for h, state, ok in zip(record.host_records, states, answers, strict=True)
        ),
        apt_url=apt_url(subnet, record.apt_port),
        state_dir=paths.root,
        inventory_path=Path(record.inventory_path) if record.inventory_path else None,
        identity_file=paths.identity_file,
        known_hosts=paths.known_hosts,
        security_data=paths.security_data if paths.security_data.exists() else None,
    )


def _write_inventory(paths: LabPaths, status: LabStatus) -> None:
    assert status.inventory_path is not None
    text = render_inventory(
        lab=status.name,
        identity_file=status.identity_file,
        known_hosts=status.known_hosts,
        apt_url=status.apt_url,
        apt_key=paths.archive_key.read_text(),
        security_data=status.security_data,
        hosts=status.hosts,
    )
    write_inventory(status.inventory_path, text)


def _host_record(plan: HostPlan, runner: ProcessRecord | None) -> HostRecord:
    return HostRecord(
        name=plan.name,
        index=plan.index,
        address=plan.address,
        ring=plan.ring,
        groups=plan.groups,
        netns=plan.netns,
        veth=plan.veth,
        runner=runner,
        release=plan.release,
    )


def _with(record: LabRecord, **changes: object) -> LabRecord:
    return replace(record, **changes)  # type: ignore[arg-type]


def _replace_inventory_path(record: LabRecord, inventory: str | None) -> LabRecord:
    return _with(record, inventory_path=inventory)
