"""`patchring lab up|status|publish|down`: the local fleet of real Debian hosts for trying
policies, and its apt repository."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.errors import EXIT_OK


def register(sub: Any) -> None:
    lab = sub.add_parser("lab", help="boot, inspect or stop the local lab fleet")
    verbs = lab.add_subparsers(dest="lab_command", required=True, parser_class=type(lab))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="lab", help="lab name (default: lab)")
    common.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    up = verbs.add_parser(
        "up", parents=[common], help="boot N Debian 12 or 13 hosts and the apt repo"
    )
    up.add_argument("--hosts", type=int, default=6, help="number of hosts (default: 6)")
    up.add_argument("--subnet", default="10.213.0.0/24", help="lab subnet (default: 10.213.0.0/24)")
    up.add_argument("--repo", type=Path, default=Path("."), help="policy repository (default: .)")
    up.add_argument(
        "--write-inventory",
        type=Path,
        default=None,
        help="where to write the lab inventory (default: <repo>/inventory/lab.yml)",
    )
    up.add_argument(
        "--release",
        default="bookworm",
        help="Debian release of the hosts: bookworm, trixie or mixed (hosts alternate; "
        "default: bookworm)",
    )
    up.add_argument(
        "--release-per-ring",
        action="append",
        default=[],
        metavar="RING=RELEASE",
        help="the release of one ring's hosts (bookworm, trixie or mixed); repeatable",
    )
    up.set_defaults(handler=cmd_up)
    status = verbs.add_parser("status", parents=[common], help="show the lab's hosts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)
    publish = verbs.add_parser(
        "publish",
        parents=[common],
        help="add a version of a test package to the running lab's apt repository",
    )
    publish.add_argument("package", help="acme-agent, acme-tool, acme-kernel, libacme1, ...")
    publish.add_argument("version", help="a Debian version, for example 1.0-4")
    publish.add_argument(
        "--suite",
        default="lab",
        help="lab, broken, lab-security (every release's security archive) or "
        "<codename>-security (default: lab)",
    )
    publish.add_argument(
        "--broken", action="store_true", help="give the package a postinst that fails"
    )
    publish.set_defaults(handler=cmd_publish)
    down = verbs.add_parser("down", parents=[common], help="stop the lab and check nothing is left")
    down.set_defaults(handler=cmd_down)


def cmd_up(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.lab import LabConfig, lab_up

    if args.hosts < 1 or args.hosts > 200:
        from orchestrator.errors import UserInputError

        raise UserInputError(f"--hosts must be between 1 and 200, not {args.hosts}")
    inventory = args.write_inventory or args.repo / "inventory" / "lab.yml"
    config = LabConfig(
        name=args.name,
        hosts=args.hosts,
        subnet=args.subnet,
        state_dir=args.state_dir,
        inventory_path=inventory,
        release=args.release,
        ring_releases=tuple(_ring_release(item) for item in args.release_per_ring),
    )
    started = time.monotonic()
    status = lab_up(config, progress=output.note)
    output.text(
        _render(status) + f"\nLab up in {time.monotonic() - started:.1f} s; inventory "
        f"written to {inventory}\n"
    )
    return EXIT_OK


def _ring_release(text: str) -> tuple[str, str]:
    ring, sep, release = text.partition("=")
    if not sep or not ring or not release:
        from orchestrator.errors import UserInputError

        raise UserInputError(f"--release-per-ring takes RING=RELEASE, not {text!r}")
    return ring, release


def cmd_publish(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.lab import lab_publish

    dists = lab_publish(
        args.package,
        args.version,
        args.suite,
        name=args.name,
        state_dir=args.state_dir,
        broken=args.broken,
    )
    output.text(
        f"Published {args.package} {args.version} to {', '.join(dists)} of lab '{args.name}'; "
        "hosts see it after apt-get update.\n"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.lab import lab_status

    status = lab_status(args.name, args.state_dir)
    if output.json_mode:
        output.document(
            {
                "schema": "patchring.lab/v1",
                "name": status.name,
                "subnet": status.subnet,
                "apt_url": status.apt_url,
                "security_data": str(status.security_data) if status.security_data else None,
                "hosts": [h.__dict__ for h in status.hosts],
            }
        )
    else:
        output.text(_render(status))
    return EXIT_OK


def cmd_down(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.errors import LabNotRunningError
    from orchestrator.lab import lab_down

    started = time.monotonic()
    try:
        removed = lab_down(args.name, args.state_dir)
    except LabNotRunningError:
        output.text(f"Lab '{args.name}' is not running; nothing to stop.\n")
        return EXIT_OK
    note = f"; removed its inventory {removed}" if removed else ""
    output.text(
        f"Lab '{args.name}' stopped in {time.monotonic() - started:.1f} s; nothing left "
        f"running{note}.\n"
    )
    return EXIT_OK


def _render(status: Any) -> str:
    lines = [f"Lab '{status.name}' on {status.subnet}, apt repository {status.apt_url}"]
    for h in status.hosts:
        ssh = "ssh ok" if h.ssh_ok else "ssh down"
        lines.append(
            f"  {h.name:<10} {h.address:<15} ring {h.ring or '-':<8} "
            f"{','.join(h.groups):<12} {h.release:<9} {h.state:<8} {ssh}"
        )
    return "\n".join(lines) + "\n"
