"""Jinja2 rendering of policy strings and template files, sandboxed and strict.

Strings containing `{{` or `{%` are rendered with a `SandboxedEnvironment` (StrictUndefined, no
autoescape, trailing newlines kept). Template files, and anything they include, are loaded only
through the `ProjectSource`, so a template can never read outside the repository. Failures
become `RenderError`s that say what went wrong in words; the resolver locates them.

A policy is untrusted input, so rendering is bounded (see `limits`): what `*`, `**`, `+`, `%`,
`~`, string methods and filters would build is checked before it is built, every loop iteration
and call counts against a step budget and a deadline, and the output has a maximum length.
Imports jinja2 and the package's `source` and `policy.projectsource`; no file I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined, Template, meta, nodes
from jinja2.exceptions import TemplateError, TemplateNotFound, TemplateSyntaxError, UndefinedError

from orchestrator.policy.limits import BoundedEnvironment, BoundVars, RenderLimitError
from orchestrator.policy.projectsource import PathOutsideRootError, ProjectSource
from orchestrator.source import SourceLocation


class RenderError(Exception):
    """Rendering failed. `location` is set when the fault is in a template file (syntax), and
    `per_host` says whether the problem depends on the host's variables."""

    def __init__(
        self, message: str, location: SourceLocation | None = None, per_host: bool = True
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.per_host = per_host


def is_template(text: str) -> bool:
    """True when a string uses Jinja2 expressions or statements and must be rendered."""
    return "{{" in text or "{%" in text


class _SourceLoader(BaseLoader):
    """Loads templates by their path relative to the repository root, through the source."""

    def __init__(self, source: ProjectSource) -> None:
        self._source = source

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            text = self._source.read_text(template)
        except (FileNotFoundError, IsADirectoryError):
            raise TemplateNotFound(template) from None
        return text, template, lambda: True


@contextmanager
def _translated(path: str | None) -> Iterator[None]:
    """Turn Jinja2 and source errors into RenderErrors; `path` names the template file, if any."""
    prefix = f"template {path}: " if path else ""
    try:
        yield
    except TemplateNotFound as error:
        missing = f"template file '{path}' not found" if error.name == path else None
        message = missing or f"{prefix}included template '{error.name}' not found"
        raise RenderError(message, per_host=False) from None
    except TemplateSyntaxError as error:
        where = SourceLocation(error.filename, error.lineno) if error.filename else None
        line = f" (line {error.lineno} of the value)" if where is None and error.lineno > 1 else ""
        raise RenderError(
            f"invalid template: {error.message}{line}", where, per_host=False
        ) from None
    except PathOutsideRootError as error:
        raise RenderError(f"template path {error.message}", per_host=False) from None
    except UnicodeDecodeError:
        raise RenderError(f"{prefix}not a UTF-8 text file", per_host=False) from None
    except UndefinedError as error:
        raise RenderError(f"{prefix}{error.message}") from None
    except RenderLimitError as error:
        raise RenderError(f"{prefix}{error}") from None
    except RecursionError:
        raise RenderError(f"{prefix}template recursion too deep") from None
    except MemoryError:
        raise RenderError(f"{prefix}rendering needs too much memory") from None
    except OSError as error:
        message = f"{prefix}cannot read the template: {error.strerror}"
        raise RenderError(message, per_host=False) from None
    except (
        TemplateError,
        ArithmeticError,
        LookupError,
        TypeError,
        ValueError,
        AttributeError,
    ) as error:
        raise RenderError(f"{prefix}template error: {error}") from None


# Jinja2 whitespace options a template file may set: (trim_blocks, lstrip_blocks).
TemplateFlags = tuple[bool, bool]


class TemplateRenderer:
    """Renders strings and template files for one project version; caches compiled templates
    (one environment per set of whitespace options: options change how a template compiles),
    and reads files copied verbatim (`source:`, `key_file:`) through the same source."""

    def __init__(self, source: ProjectSource) -> None:
        self._source = source
        self._envs: dict[TemplateFlags, BoundedEnvironment] = {}
        self._env = self._environment((False, False))
        self._compiled: dict[str, Template] = {}
        self._files: dict[tuple[str, TemplateFlags], Template] = {}
        self._verbatim: dict[str, bytes] = {}
        self._reads: dict[tuple[str, str], frozenset[str] | None] = {}

    def _environment(self, flags: TemplateFlags) -> BoundedEnvironment:
        env = self._envs.get(flags)
        if env is None:
            env = self._envs[flags] = BoundedEnvironment(
                loader=_SourceLoader(self._source),
                undefined=StrictUndefined,
                autoescape=False,
                keep_trailing_newline=True,
                auto_reload=False,
                trim_blocks=flags[0],
                lstrip_blocks=flags[1],
            )
        return env

    def read_verbatim(self, path: str, what: str) -> bytes:
        """The bytes of a repository file copied as it is (`what` names it in errors, e.g.
        `source file`). Raises RenderError."""
        if path not in self._verbatim:
            try:
                self._verbatim[path] = self._source.read_bytes(path)
            except (FileNotFoundError, IsADirectoryError):
                raise RenderError(f"{what} '{path}' not found", per_host=False) from None
            except PathOutsideRootError as error:
                raise RenderError(f"{what} {error.message}", per_host=False) from None
            except OSError as error:
                message = f"cannot read {what} '{path}': {error.strerror}"
                raise RenderError(message, per_host=False) from None
        return self._verbatim[path]

    def bind(self, context: Mapping[str, Any]) -> BoundVars:
        """`context` prepared once for many renderings (one host's variables)."""
        return self._env.bind(context)

    def names_read(self, text: str | None = None, path: str | None = None) -> frozenset[str] | None:
        """The variables a policy string (`text`) or template file (`path`) reads, or None when
        that cannot be told (a syntax error, a file that cannot be read, or an include, import
        or extends, whose template reads the caller's variables too)."""
        key = ("text", text) if text is not None else ("file", path or "")
        if key not in self._reads:
            try:
                source = text if text is not None else self._source.read_text(path or "")
                tree = self._env.parse(source)
            except (TemplateError, OSError, UnicodeDecodeError, PathOutsideRootError):
                self._reads[key] = None
            else:
                outside = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
                shared = next(tree.find_all(outside), None)
                found = meta.find_undeclared_variables(tree)
                self._reads[key] = frozenset(found) if shared is None else None
        return self._reads[key]

    def render_text(self, text: str, context: Mapping[str, Any]) -> str:
        """Render one policy string. Raises RenderError."""
        with _translated(None):
            template = self._compiled.get(text)
            if template is None:
                template = self._compiled.setdefault(text, self._env.from_string(text))
            return self._env.render_bounded(template, context)

    def render_file(
        self, path: str, context: Mapping[str, Any], flags: TemplateFlags = (False, False)
    ) -> str:
        """Render a template file named by its path in the repository, with the whitespace
        options `flags` (trim_blocks, lstrip_blocks). Raises RenderError."""
        env = self._environment(flags)
        with _translated(path):
            template = self._files.get((path, flags))
            if template is None:  # (Jinja2's own cache costs more than a render at this size)
                template = self._files[(path, flags)] = env.get_template(path)
            return env.render_bounded(template, context)
