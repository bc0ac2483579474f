"""Schema validation of located YAML against the pydantic models, with messages people can act on.

Turns each pydantic error into a `Diagnostic` at the offending key or value: unknown keys with a
did-you-mean, missing keys at their parent mapping, wrong types in plain words, allowed values for
literals. Also holds the small naming checks every loader shares (`suggest`, variable names).
Imports pydantic and the package's model, source, errors and `policy.yamlsource`; no I/O.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from pydantic_core import ErrorDetails

from orchestrator.errors import Diagnostic
from orchestrator.model.grammar import shown
from orchestrator.model.policy import MODE, NAME, field_names
from orchestrator.policy.yamlsource import LocatedYaml, YamlPath

M = TypeVar("M", bound=BaseModel)

RESERVED_VARS = frozenset({"host"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATTERN_HINTS = {
    NAME: "is not a valid name (letters, digits, _ . + -; starting with a letter or digit)",
    MODE: "is not a file mode (like 0644)",
    "^/": "is not an absolute path",
    r"^[a-z0-9_]+(\.[A-Za-z0-9_*-]+)+$": "is not a sysctl key (like net.ipv4.ip_forward)",
    r"^[a-z_][a-z0-9_-]*$": "is not a valid user name (lowercase letters, digits, _ and -)",
    r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$": "is not module:function",
}
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false)",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_PARSING_WORDS = {
    "bool_parsing": "a boolean",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
}


def suggest(name: str, candidates: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(value: Any) -> str:
    """A value's YAML kind with an article: 'a string', 'a list', 'an empty value'."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def quote(value: Any) -> str:
    """A value as it reads in a message: strings quoted, booleans and null as YAML writes them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{shown(value)}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(quote(item) for item in value) + "]"
    return str(value)


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else None
    return annotation


def model_at(model: type[BaseModel], loc: YamlPath) -> type[BaseModel] | None:
    """The model class that validates the value at `loc` inside `model`, if it is one."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = found.annotation if found else None
        elif get_origin(annotation) in (tuple, list) and get_args(annotation):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict and len(get_args(annotation)) == 2:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _unknown_key(model: type[BaseModel], loc: YamlPath) -> str:
    key = str(loc[-1])
    parent = model_at(model, loc[:-1])
    if parent is None:
        return f"unknown key '{key}'"
    names = field_names(parent)
    hint = suggest(key, names) or f" (allowed: {', '.join(names)})"
    return f"unknown key '{key}'{hint}"


def _quote_hint(located: LocatedYaml, loc: YamlPath) -> str:
    text = located.texts.get(loc)
    return f' (quote it: "{text}")' if text is not None else ""


def _literal(error: ErrorDetails) -> str:
    expected = str((error.get("ctx") or {}).get("expected", ""))
    value = error["input"]
    hint = suggest(value, re.findall(r"'([^']*)'", expected)) if isinstance(value, str) else ""
    return f"expected {expected}, got {quote(value)}{hint}"


def message_for(
    model: type[BaseModel], error: ErrorDetails, located: LocatedYaml, loc: YamlPath
) -> str:
    """The plain-words message for one pydantic error at `loc` (a path in `located`)."""
    kind, value = error["type"], error["input"]
    if kind == "extra_forbidden":
        return _unknown_key(model, error["loc"])
    if kind == "missing":
        return f"missing required key '{error['loc'][-1]}'"
    if kind in _TYPE_WORDS:
        hint = _quote_hint(located, loc) if kind == "string_type" else ""
        return f"expected {_TYPE_WORDS[kind]}, got {describe(value)}{hint}"
    if kind in _PARSING_WORDS:
        if isinstance(value, str):
            return f"'{value}' is not {_PARSING_WORDS[kind]}"
        return f"expected {_PARSING_WORDS[kind]}, got {describe(value)}"
    if kind == "literal_error":
        return _literal(error)
    if kind == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        return f"{quote(value)} {_PATTERN_HINTS.get(pattern, f'does not match {pattern}')}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{error['msg'].replace('Input should be', 'must be')}, got {quote(value)}"
    return str(error["msg"])


def error_location_path(error: ErrorDetails) -> YamlPath:
    return tuple(part for part in error["loc"] if isinstance(part, str | int))


def diagnose(
    model: type[BaseModel],
    error: PydanticError,
    located: LocatedYaml,
    prefix: YamlPath = (),
    suffix: str = "",
) -> list[Diagnostic]:
    """One Diagnostic per pydantic error; `prefix` is where the validated value sits in
    `located`, `suffix` is appended to every message (e.g. " (host lab-01)")."""
    found: list[Diagnostic] = []
    for detail in error.errors():
        loc = prefix + error_location_path(detail)
        if detail["type"] == "extra_forbidden":
            where = located.key_location(loc)
        elif loc[-1:] == ("[key]",):  # a mapping key itself is invalid (a host name...)
            loc = loc[:-1]
            where = located.key_location(loc)
        elif detail["type"] == "missing":
            where = located.value_location(loc[:-1])
        else:
            where = located.value_location(loc)
        found.append(Diagnostic(where, message_for(model, detail, located, loc) + suffix))
    return found


def validate_located(
    model: type[M],
    located: LocatedYaml,
    prefix: YamlPath = (),
    data: Any = None,
    suffix: str = "",
    rendered: bool = False,
) -> tuple[M | None, list[Diagnostic]]:
    """Validate `data` (default: the whole document) as `model`: the instance, or the problems.
    `rendered` says templates were rendered, so templated fields get their full check."""
    value = located.data if data is None else data
    try:
        return model.model_validate(value, context={"rendered": rendered}), []
    except PydanticError as error:
        return None, diagnose(model, error, located, prefix, suffix)


def check_var_names(
    located: LocatedYaml, prefix: YamlPath, names: Mapping[str, Any]
) -> list[Diagnostic]:
    """Variables must be usable in templates (identifiers); one named like a built-in is a
    warning (the built-in wins, so the variable is never seen)."""
    found: list[Diagnostic] = []
    for name in names:
        where = located.key_location((*prefix, name))
        if name in RESERVED_VARS:
            message = (
                f"variable '{name}' is shadowed by the built-in '{name}' (host.name, "
                "host.address, host.ring, host.groups), which templates see; choose another name"
            )
            found.append(Diagnostic(where, message, "warning"))
        elif not _IDENTIFIER.match(name):
            message = (
                f"variable name '{name}' is not usable in templates (use letters, digits and _)"
            )
            found.append(Diagnostic(where, message))
    return found
