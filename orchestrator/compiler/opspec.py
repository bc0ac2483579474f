"""An operation spec: which pyinfra operation to call, with which arguments, for which resources."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from pydantic import Field, SerializerFunctionWrapHandler, field_serializer, model_serializer

from orchestrator.model.base import Frozen
from orchestrator.source import SourceLocation

if TYPE_CHECKING:
    from orchestrator.model.desired import Resource


class OpSpec(Frozen):
    """One pyinfra operation call. `operation` is `module.function` under `pyinfra.operations`,
    or `deploy:module:function` for a deploy (the policy repository's `deploys/<module>.py`, run
    from `content`, when that is set; else the installed `deploys` package's)."""

    operation: str
    # Operation keyword arguments: plain JSON-able values only. They are free-form because each
    # pyinfra operation has its own signature; a contract test binds them to it.
    args: dict[str, Any] = {}
    content: bytes | None = Field(
        None, description="Body for files.put (any bytes); sent as an in-memory file."
    )
    fetch_url: str | None = Field(
        None,
        description="Body for files.put fetched by the controller at apply time (an apt key)...",
    )
    fingerprint: str | None = Field(None, description="...which must hold this OpenPGP key.")
    module_source: str | None = Field(
        None, description="For a deploy from the policy repository: its module's source."
    )
    effect: tuple[str, ...] | None = Field(
        None,
        description="For patchring's own shell steps: the only absolute paths they change "
        "(the engine keeps facts about anything else). None: anything may change.",
    )
    resource_ids: tuple[str, ...]
    policy: str
    location: SourceLocation
    description: str

    @field_serializer("content", when_used="json")
    def _content_json(self, content: bytes | None) -> str | dict[str, str] | None:
        """UTF-8 text as text (golden files stay readable), other bytes as base64."""
        if content is None:
            return None
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(content).decode()}

    @model_serializer(mode="wrap")
    def _without_unset_fetch(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave the fetch fields out unless set (only a fetched apt key has them), and the
        effect unless declared."""
        data: dict[str, Any] = handler(self)
        for name in ("fetch_url", "fingerprint", "effect"):
            if data.get(name) is None:
                data.pop(name, None)
        return data

    @property
    def is_deploy(self) -> bool:
        return self.operation.startswith("deploy:")


def resource_op(resource: Resource, operation: str, description: str, **args: object) -> OpSpec:
    """The operation of one resource; arguments left at None are not passed (pyinfra's
    defaults apply)."""
    return OpSpec(
        operation=operation,
        args={k: v for k, v in args.items() if v is not None},
        resource_ids=(resource.id,),
        policy=resource.policy,
        location=resource.location,
        description=description,
    )
