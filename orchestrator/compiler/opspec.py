"""An operation spec: which pyinfra operation to call, with which arguments, for which resources."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orchestrator.model.base import Frozen
from orchestrator.source import SourceLocation


class OpSpec(Frozen):
    """One pyinfra operation call. `operation` is `module.function` under `pyinfra.operations`,
    or `deploy:module:function` for a deploy (the policy repository's `deploys/<module>.py`, run
    from `content`, when that is set; else the installed `deploys` package's)."""

    operation: str
    # Operation keyword arguments: plain JSON-able values only. They are free-form because each
    # pyinfra operation has its own signature; a contract test binds them to it.
    args: dict[str, Any] = {}
    content: str | None = Field(
        None,
        description="Body for files.put (sent as an in-memory file); for a deploy from the "
        "policy repository, its module's source.",
    )
    resource_ids: tuple[str, ...]
    policy: str
    location: SourceLocation
    description: str

    @property
    def is_deploy(self) -> bool:
        return self.operation.startswith("deploy:")
