"""`patchring worker`: a Temporal worker for rollouts on Temporal.

`--site NAME` polls the site's task queue and applies and verifies the batches of that site's
hosts (run it where those hosts can be reached); `--workflows` runs the rollout workflows and
their central steps (ledger writes, gates). One process may do both. Ends on SIGTERM or SIGINT
after the step at hand (up to 10 s).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.errors import EXIT_OK, UserInputError
from orchestrator.model.grammar import check_label


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "worker", parents=[common], help="run a Temporal worker for a site (rollouts on Temporal)"
    )
    p.add_argument("--site", help="the site whose hosts this worker reaches (inventory `site:`)")
    p.add_argument(
        "--workflows",
        action="store_true",
        help="also run the rollout workflows and their central steps (ledger, gates)",
    )
    p.add_argument(
        "--address",
        "--temporal-address",
        dest="temporal_address",
        help="Temporal frontend HOST:PORT (default: $TEMPORAL_ADDRESS, else 127.0.0.1:7233)",
    )
    p.add_argument(
        "--namespace",
        "--temporal-namespace",
        dest="temporal_namespace",
        help="Temporal namespace (default: $TEMPORAL_NAMESPACE, else default)",
    )
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace, output: Output) -> int:
    if args.site is None and not args.workflows:
        raise UserInputError("give --site NAME, --workflows, or both: what should it run?")
    if args.site is not None:
        try:
            check_label(args.site)
        except ValueError as error:
            raise UserInputError(f"--site: {error}") from error
    from orchestrator.model.inventory import TemporalSettings
    from orchestrator.rollout.temporal.messages import ROLLOUT_QUEUE, site_queue
    from orchestrator.rollout.temporal.service import TemporalTarget, run_worker

    target = TemporalTarget.chosen(
        args.temporal_address, args.temporal_namespace, TemporalSettings(), os.environ
    )
    queues = [site_queue(args.site)] if args.site else []
    queues += [ROLLOUT_QUEUE] if args.workflows else []
    output.note(f"worker on {target.address} ({target.namespace}): polling {', '.join(queues)}")
    run_worker(target, args.site, args.workflows)
    output.note("worker stopped")
    return EXIT_OK
