"""YAML with locations: plain Python values plus the file:line:col of every key and value.

Parses with PyYAML's safe composer (nodes carry marks; libyaml's C composer when PyYAML has
it, about ten times faster, with the pure-Python one re-run on a file that fails so every
syntax error reads as it always has) and converts the node tree itself, so only safe values
come out: mappings with string keys, lists, str, int, float, bool and null.
Deliberate choices: anchors and aliases are allowed (an aliased value is located where its anchor
is defined), merge keys (`<<`) and explicit tags other than the standard scalar ones are
rejected, and dates stay strings (no model field wants a date). Every problem is a `Diagnostic`.
Three tags of our own mark secrets (their paths are kept in `LocatedYaml.secrets`): `!secret`
on any value, and `!env NAME` / `!file path`, whose text the caller's `ReferenceReader` supplies
(a tagged scalar is a string). Imports only PyYAML and the package's `source` and `errors`; no
file I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.source import SourceLocation

YamlPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_SCALAR_KINDS = {
    _TAG + "null": "null",
    _TAG + "bool": "boolean",
    _TAG + "int": "number",
    _TAG + "float": "number",
}
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_BITS = 1024  # about 300 digits: far above any count, id or size a policy needs
SECRET_TAG = "!secret"
ENV_TAG = "!env"
FILE_TAG = "!file"
ReferenceReader = Callable[[str, str], str]
"""(tag, argument) -> the text an `!env NAME` or `!file path` stands for; raises
`ReferenceProblem` with a message when it cannot."""


class ReferenceProblem(Exception):
    """Why an `!env` or `!file` value cannot be read (reported at the value)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LocatedYaml:
    """One parsed YAML document: its data and where each key and value sits in the file."""

    file: str
    data: Any
    values: Mapping[YamlPath, SourceLocation]
    keys: Mapping[YamlPath, SourceLocation]
    texts: Mapping[YamlPath, str] = field(default_factory=dict)
    """The source text of scalars YAML read as something other than a string (`0640`, `yes`)."""
    secrets: frozenset[YamlPath] = frozenset()
    """Paths of the values tagged `!secret`, `!env` or `!file` (everything below them is secret)."""

    def is_secret(self, path: YamlPath) -> bool:
        """Whether the value at `path` is, or lies inside, a value tagged as secret."""
        return any(path[:n] in self.secrets for n in range(len(path) + 1))

    def value_location(self, path: YamlPath) -> SourceLocation:
        """Where the value at `path` starts, or else its nearest recorded ancestor."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, SourceLocation(self.file, 1, 1))

    def key_location(self, path: YamlPath) -> SourceLocation:
        """Where the mapping key of `path` is written, or else where its value starts."""
        return self.keys.get(path) or self.value_location(path)

    def mapping_at(self, path: YamlPath) -> dict[str, Any]:
        """The mapping at `path`, or an empty one when there is none (or something else)."""
        value = self.data
        for part in path:
            if isinstance(value, dict) and isinstance(part, str):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return {}
        return value if isinstance(value, dict) else {}


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _location(file: str, node: Node) -> SourceLocation:
    return SourceLocation(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(Protocol):
    """What both PyYAML loaders (pure Python and libyaml) offer the converter."""

    def get_single_node(self) -> Node | None: ...
    def dispose(self) -> None: ...
    def construct_yaml_bool(self, node: ScalarNode) -> bool: ...
    def construct_yaml_int(self, node: ScalarNode) -> int: ...
    def construct_yaml_float(self, node: ScalarNode) -> float: ...


class _Converter:
    """Walks a composed node tree into plain values, recording locations and problems."""

    def __init__(
        self, file: str, loader: _Loader, references: ReferenceReader | None = None
    ) -> None:
        self.file = file
        self.loader = loader
        self.references = references
        self.secrets: set[YamlPath] = set()
        self.values: dict[YamlPath, SourceLocation] = {}
        self.keys: dict[YamlPath, SourceLocation] = {}
        self.texts: dict[YamlPath, str] = {}
        self.problems: list[Diagnostic] = []
        self._active: set[int] = set()
        self._count = 0

    def error(self, node: Node, message: str) -> None:
        self.problems.append(Diagnostic(_location(self.file, node), message))

    def convert(self, node: Node, path: YamlPath) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            raise _TooLarge(path)
        if len(path) > MAX_DEPTH:
            raise _TooDeep(path)
        self.values[path] = _location(self.file, node)
        if id(node) in self._active:
            self.error(node, "an alias refers to the value that contains it")
            return None
        self._active.add(id(node))
        try:
            if node.tag in (ENV_TAG, FILE_TAG):
                return self._reference(node, path)
            if node.tag == SECRET_TAG:
                self.secrets.add(path)
                node = _untagged(node)
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _reference(self, node: Node, path: YamlPath) -> str | None:
        tag = node.tag
        if not isinstance(node, ScalarNode) or not str(node.value).strip():
            what = "a variable name" if tag == ENV_TAG else "a file path"
            self.error(node, f"'{tag}' needs {what}, e.g. '{tag} {_EXAMPLES[tag]}'")
            return None
        if self.references is None:
            self.error(node, f"'{tag}' is not allowed in this file")
            return None
        try:
            text = self.references(tag, str(node.value).strip())
        except ReferenceProblem as problem:
            self.error(node, problem.message)
            return None
        self.secrets.add(path)
        return text

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any] | None:
        if node.tag != _TAG + "map":
            self.error(node, f"unsupported tag '{_tag(node.tag)}'")
            return None
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is None:
                continue
            if key in first_line:
                self.error(key_node, f"duplicate key '{key}' (first at line {first_line[key]})")
                continue
            first_line[key] = key_node.start_mark.line + 1
            self.keys[(*path, key)] = _location(self.file, key_node)
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _key(self, node: Node) -> str | None:
        if node.tag == _TAG + "merge":
            self.error(node, "merge keys ('<<') are not supported; write the keys out")
            return None
        if not isinstance(node, ScalarNode):
            self.error(node, "a key must be a plain string, not a list or mapping")
            return None
        if node.tag in _SCALAR_KINDS:
            kind = _SCALAR_KINDS[node.tag]
            self.error(node, f"key '{node.value}' is read as a {kind}, not a string; quote it")
            return None
        if node.tag not in (_TAG + "str", _TAG + "timestamp"):
            self.error(node, f"unsupported tag '{_tag(node.tag)}'")
            return None
        return str(node.value)

    def _sequence(self, node: SequenceNode, path: YamlPath) -> list[Any] | None:
        if node.tag != _TAG + "seq":
            self.error(node, f"unsupported tag '{_tag(node.tag)}'")
            return None
        return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]

    def _scalar(self, node: Node, path: YamlPath) -> Any:
        tag = node.tag
        if tag in (_TAG + "str", _TAG + "timestamp"):
            return str(node.value)
        if tag not in _SCALAR_KINDS:
            self.error(node, f"unsupported tag '{_tag(tag)}'")
            return None
        self.texts[path] = str(node.value)
        assert isinstance(node, ScalarNode)
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return self.loader.construct_yaml_bool(node)
        if tag == _TAG + "int":
            return self._int(node)
        return self.loader.construct_yaml_float(node)

    def _int(self, node: ScalarNode) -> int | None:
        try:
            value = int(self.loader.construct_yaml_int(node))
        except ValueError:  # more digits than Python converts (4,300)
            value = None
        if value is None or value.bit_length() > MAX_INT_BITS:
            self.error(node, "number too large (more than 300 digits)")
            return None
        return value


class _TooDeep(Exception):
    def __init__(self, path: YamlPath) -> None:
        super().__init__("too deep")
        self.path = path


_EXAMPLES = {ENV_TAG: "DB_PASSWORD", FILE_TAG: "secrets/db_password"}


def _untagged(node: Node) -> Node:
    """`node` as if it had no tag: a scalar is a string, collections keep their kind."""
    if isinstance(node, MappingNode):
        return MappingNode(_TAG + "map", node.value, node.start_mark, node.end_mark)
    if isinstance(node, SequenceNode):
        return SequenceNode(_TAG + "seq", node.value, node.start_mark, node.end_mark)
    assert isinstance(node, ScalarNode)
    return ScalarNode(_TAG + "str", node.value, node.start_mark, node.end_mark, node.style)


class _TooLarge(Exception):
    def __init__(self, path: YamlPath) -> None:
        super().__init__("too large")
        self.path = path


def _syntax_message(error: yaml.MarkedYAMLError) -> str:
    problem = error.problem or "unreadable YAML"
    if "'\\t'" in problem:
        return f"invalid YAML: {problem} (indent with spaces, not tabs)"
    if error.context and problem.startswith("but "):
        return f"invalid YAML: {error.context}, {problem}"
    if error.context and error.context_mark is not None:
        line = error.context_mark.line + 1
        return f"invalid YAML: {problem} ({error.context} started at line {line})"
    return f"invalid YAML: {problem}"


def _reader_diagnostic(file: str, text: str, error: yaml.reader.ReaderError) -> Diagnostic:
    before = text[: error.position]
    line = before.count("\n") + 1
    col = error.position - (before.rfind("\n") + 1) + 1
    message = f"invalid YAML: character #x{error.character:04x} is not allowed"
    return Diagnostic(SourceLocation(file, line, col), message)


def parse_yaml(
    text: str, file: str, what: str = "policy", references: ReferenceReader | None = None
) -> LocatedYaml:
    """Parse one YAML document. Raises ValidationError with every problem found; `what` names
    the kind of file in the message for an empty one ("empty policy file"); `references` reads
    `!env` and `!file` values (without it they are errors)."""
    make_loader: Callable[[str], _Loader] = yaml.SafeLoader
    if _FAST_LOADER is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        make_loader = _FAST_LOADER  # (PyYAML's reader refuses those characters; libyaml may not)
    return _parse(text, file, what, references, make_loader)


# libyaml's loader, when PyYAML was built with it; its marks count characters as ours do.
_FAST_LOADER: Callable[[str], _Loader] | None = getattr(yaml, "CSafeLoader", None)


def _parse(
    text: str,
    file: str,
    what: str,
    references: ReferenceReader | None,
    make_loader: Callable[[str], _Loader],
) -> LocatedYaml:
    try:
        loader = make_loader(text)
    except yaml.reader.ReaderError as error:
        raise ValidationError([_reader_diagnostic(file, text, error)]) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise ValidationError([Diagnostic(SourceLocation(file, 1, 1), f"empty {what} file")])
        converter = _Converter(file, loader, references)
        data = converter.convert(root, ())
    except (yaml.MarkedYAMLError, yaml.reader.ReaderError) as error:
        if make_loader is not yaml.SafeLoader:  # libyaml words errors its own way: ask PyYAML
            return _parse(text, file, what, references, yaml.SafeLoader)
        if isinstance(error, yaml.reader.ReaderError):
            raise ValidationError([_reader_diagnostic(file, text, error)]) from None
        mark = error.problem_mark or error.context_mark
        where = (
            SourceLocation(file, mark.line + 1, mark.column + 1) if mark else SourceLocation(file)
        )
        raise ValidationError([Diagnostic(where, _syntax_message(error))]) from None
    except _TooLarge as error:
        message = f"document too large: more than {MAX_NODES} values once aliases are expanded"
        where = converter.keys.get(error.path[:1], SourceLocation(file, 1, 1))
        raise ValidationError([Diagnostic(where, message)]) from None
    except _TooDeep as error:
        message = f"document nested too deeply (more than {MAX_DEPTH} levels)"
        where = converter.values.get(error.path[:-1], SourceLocation(file, 1, 1))
        raise ValidationError([Diagnostic(where, message)]) from None
    except RecursionError:
        message = "document nested too deeply"
        raise ValidationError([Diagnostic(SourceLocation(file, 1, 1), message)]) from None
    finally:
        loader.dispose()
    if converter.problems:
        raise ValidationError(converter.problems)
    return LocatedYaml(
        file, data, converter.values, converter.keys, converter.texts, frozenset(converter.secrets)
    )
