"""JSON Schemas for editors, generated from the pydantic models (never written by hand).

Pure; imports pydantic models only.
"""

from __future__ import annotations

from typing import Any

from orchestrator.model.exceptions import ExceptionsDocument
from orchestrator.model.inventory import InventoryDocument
from orchestrator.model.policy import PolicyDocument

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (draft 2020-12)."""
    schema = PolicyDocument.model_json_schema()
    schema["title"] = "patchring policy"
    return {"$schema": DRAFT_2020_12, **schema}


def inventory_json_schema() -> dict[str, Any]:
    """The JSON Schema of an inventory file (draft 2020-12)."""
    schema = InventoryDocument.model_json_schema()
    schema["title"] = "patchring inventory"
    return {"$schema": DRAFT_2020_12, **schema}


def exceptions_json_schema() -> dict[str, Any]:
    """The JSON Schema of an exceptions file, `exceptions/*.yml` (draft 2020-12)."""
    schema = ExceptionsDocument.model_json_schema()
    schema["title"] = "patchring exceptions"
    return {"$schema": DRAFT_2020_12, **schema}


SCHEMAS = {
    "policies": policy_json_schema,
    "inventory": inventory_json_schema,
    "exceptions": exceptions_json_schema,
}
"""Each kind of file `patchring schema --for KIND` describes."""
