"""`patchring lab up|status|down`: the local fleet of real Debian hosts for trying policies."""

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
    up = verbs.add_parser("up", parents=[common], help="boot N Debian 12 hosts and the apt repo")
    up.add_argument("--hosts", type=int, default=6, help="number of hosts (default: 6)")
    up.add_argument("--subnet", default="10.213.0.0/24", help="lab subnet (default: 10.213.0.0/24)")
    up.add_argument("--repo", type=Path, default=Path("."), help="policy repository (default: .)")
    up.add_argument(
        "--write-inventory",
        type=Path,
        default=None,
        help="where to write the lab inventory (default: <repo>/inventory/lab.yml)",
    )
    up.set_defaults(handler=cmd_up)
    status = verbs.add_parser("status", parents=[common], help="show the lab's hosts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)
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
    )
    started = time.monotonic()
    status = lab_up(config, progress=output.note)
    output.text(
        _render(status) + f"\nLab up in {time.monotonic() - started:.1f} s; inventory "
        f"written to {inventory}\n"
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
                "hosts": [h.__dict__ for h in status.hosts],
            }
        )
    else:
        output.text(_render(status))
    return EXIT_OK


def cmd_down(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.lab import lab_down

    started = time.monotonic()
    lab_down(args.name, args.state_dir)
    output.text(
        f"Lab '{args.name}' stopped in {time.monotonic() - started:.1f} s; nothing left running.\n"
    )
    return EXIT_OK


def _render(status: Any) -> str:
    lines = [f"Lab '{status.name}' on {status.subnet}, apt repository {status.apt_url}"]
    for h in status.hosts:
        ssh = "ssh ok" if h.ssh_ok else "ssh down"
        lines.append(
            f"  {h.name:<10} {h.address:<15} ring {h.ring or '-':<8} "
            f"{','.join(h.groups):<12} {h.state:<8} {ssh}"
        )
    return "\n".join(lines) + "\n"
