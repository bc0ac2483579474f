"""The base of every model that crosses a module boundary: frozen, and strict about keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Unknown keys are errors; instances never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
