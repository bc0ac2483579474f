"""Change tickets: whether a rollout may start with the ticket id it was given (or without one).

A ring with `require_change_ticket: true` refuses a rollout that has no `--change-ticket ID`; a
ring with `change_ticket_pattern` refuses an id that does not match the pattern whole. The check
runs before a rollout is recorded, so a refusal changes nothing. Pure: imports the standard
library, `errors` and `model` only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from orchestrator.errors import UserInputError
from orchestrator.model.inventory import InventoryRing


class ChangeTicketError(UserInputError):
    """A ring's change-ticket rule refuses the rollout; nothing was done."""


def check_change_ticket(ticket: str | None, rings: Sequence[InventoryRing]) -> None:
    """Raise ChangeTicketError naming the first ring (and where it is defined) whose rule the
    ticket breaks: missing where required, or not matching the ring's pattern."""
    if ticket is not None and (not ticket.strip() or any(c.isspace() for c in ticket)):
        raise ChangeTicketError(
            f"change ticket id {ticket!r} is empty or contains whitespace; nothing was done"
        )
    for ring in rings:
        pattern = ring.change_ticket_pattern
        if ticket is None and ring.require_change_ticket:
            like = f" matching {pattern}" if pattern else ""
            raise ChangeTicketError(
                f"{ring.location}: ring '{ring.name}' requires a change ticket; nothing was done",
                hint=f"pass --change-ticket ID{like} (it is recorded in the ledger and reports)",
            )
        if ticket is not None and pattern is not None and not re.fullmatch(pattern, ticket):
            raise ChangeTicketError(
                f"{ring.location}: change ticket '{ticket}' does not match ring "
                f"'{ring.name}''s change_ticket_pattern {pattern}; nothing was done",
                hint="pass the id of the approved change, as the pattern describes it",
            )
