"""A Jinja2 sandbox that also bounds what a template may cost: memory, steps and time.

`BoundedEnvironment` is an `ImmutableSandboxedEnvironment` whose renderings cannot exhaust the
controller: the sizes that `*`, `**`, `+`, `%`, `~`, `str.format`/`%` widths, padding and
`replace`/`join` would produce are computed before the work is done and refused above the
limits; every loop iteration and every call is a step (a budget per rendering, and a deadline);
the output, streamed or buffered (macros, `{% set %}` blocks), has a maximum length. Breaking a
limit raises `RenderLimitError`, which `render` reports like any template error. The budget
lives on the environment instance of one renderer (rendering is single-threaded), never at
module level. Imports jinja2 and the standard library only.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 1_000_000
"""Characters (or list items) any one value, and the whole output, may have."""
MAX_INT_BITS = 4096
"""About 1,200 digits: arithmetic beyond this is refused (and stays printable)."""
MAX_BUILT = 20 * MAX_OUTPUT
"""Characters all operators, calls and filters of one rendering may build together."""
MAX_STEPS = 200_000
"""Loop iterations, calls and operators per rendering."""
MAX_SECONDS = 10.0
"""Wall-clock limit of one rendering."""

_STEP = "__patchring_step__"
_FORMAT_NUMBER = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?|\{[^{}]*?:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


class BoundVars(dict[str, Any]):
    """A template context already merged with the environment's globals (`bind`): rendered as
    it is, never changed by a rendering."""


class RenderLimitError(Exception):
    """A template tried to build too much, or ran too long."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    built: int = 0


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _too_big(what: str) -> RenderLimitError:
    return RenderLimitError(f"{what} would exceed the limit of {MAX_OUTPUT:,} characters")


def check_format(text: str) -> None:
    """Refuse `%` and `{:}` format specifications with widths or precisions above the limit."""
    for match in _FORMAT_NUMBER.finditer(text):
        numbers = [part for part in match.groups() if part]
        for number in (n for part in numbers for n in _DIGITS.findall(part)):
            if len(number) > 7 or int(number) > MAX_OUTPUT:
                raise _too_big(f"a format width of {number}")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    left_size, right_size = _sized(left), _sized(right)
    if operator == "*":
        for size, count in ((left_size, right), (right_size, left)):
            if size is not None and isinstance(count, int) and size * max(count, 0) > MAX_OUTPUT:
                raise _too_big("repeating a value")
        if isinstance(right, int) and _bits(left) + _bits(right) > MAX_INT_BITS:
            raise RenderLimitError(f"a product of more than {MAX_INT_BITS} bits is refused")
    elif operator == "**":
        if isinstance(right, int) and right > 0 and _bits(left) * right > MAX_INT_BITS:
            raise RenderLimitError(f"a power of more than {MAX_INT_BITS} bits is refused")
    elif operator == "+":
        if left_size is not None and right_size is not None and left_size + right_size > MAX_OUTPUT:
            raise _too_big("joining two values")
    elif operator == "%" and isinstance(left, str):
        check_format(left)
        values = right if isinstance(right, tuple) else (right,)
        if any(isinstance(v, int) and abs(v) > MAX_OUTPUT for v in values) and "*" in left:
            raise _too_big("a '*' format width")


def _bits(value: Any) -> int:
    """Bits of an int above 1 in size (0 otherwise: powers of 0, 1 and -1 do not grow)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1:
        return abs(value).bit_length()
    return 0


def _check_arguments(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """Widths and counts given to padding functions (`center`, `ljust`, `indent`...)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise _too_big(f"an argument of {value}")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > MAX_OUTPUT:
            raise _too_big("replacing text")


def _check_join(separator: Any, items: Any) -> None:
    countable = isinstance(items, list | tuple | str | range)
    if isinstance(separator, str) and countable and len(separator) * len(items) > MAX_OUTPUT:
        raise _too_big("joining items")


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `~` into a call that checks the joined size first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with limits; render with `render_bounded`. Immutable: a template cannot
    change a variable's list or dict in place (`.append`, `.update`), since renderings share
    the values (and their results) between hosts."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._budget: _Budget | None = None
        self.globals.pop("lipsum", None)  # builds text of any size; no policy needs it
        self.globals[_STEP] = lambda: None
        self.filters = {name: self._bounded_filter(f) for name, f in self.filters.items()}
        self.concat = self._join  # type: ignore[method-assign]  # buffered output and `~`

    # --- the budget ------------------------------------------------------------------------

    def render_bounded(self, template: Template, context: Mapping[str, Any]) -> str:
        """Render `template` under the limits. Raises RenderLimitError (and Jinja2 errors).
        A `BoundVars` context is used as it is (Jinja2 would copy every global and variable
        into a new dict for each rendering); any other is merged with the globals first."""
        self._budget = _Budget(deadline=time.monotonic() + MAX_SECONDS)
        bound = isinstance(context, BoundVars)
        if isinstance(context, BoundVars):
            # Read only (`set` writes frame.vars). No template globals of its own: every
            # template of an environment sees just the environment's, which `bind` merged in.
            frame = self.context_class(self, context, template.name, template.blocks)
            chunks = template.root_render_func(frame)
        else:
            chunks = template.generate(context)
        try:
            parts: list[str] = []
            size = 0
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise _too_big("the rendered output")
                parts.append(chunk)
            return "".join(parts)
        except Exception:
            if bound:  # as `generate` does: the traceback points into the template
                self.handle_exception()
            raise
        finally:
            self._budget = None

    def bind(self, context: Mapping[str, Any]) -> BoundVars:
        """`context` merged with the globals once, for many renderings (variables win, as in
        Jinja2)."""
        return BoundVars({**self.globals, **context})

    def step(self) -> None:
        budget = self._budget
        if budget is None:  # compile-time constant folding: nothing to count
            return
        budget.steps += 1
        if budget.steps > MAX_STEPS:
            raise RenderLimitError(f"the template takes more than {MAX_STEPS:,} steps")
        if budget.steps % 1000 == 0 and time.monotonic() > budget.deadline:
            raise RenderLimitError(f"rendering took longer than {MAX_SECONDS:g} s")

    def built(self, value: Any) -> Any:
        """`value`, counted against what one rendering may build."""
        size = _sized(value)
        if size is None:
            return value
        if size > MAX_OUTPUT:
            raise _too_big("a value")
        if self._budget is not None:
            self._budget.built += size
            if self._budget.built > MAX_BUILT:
                raise RenderLimitError(f"the template builds more than {MAX_BUILT:,} characters")
        return value

    def _join(self, parts: Iterable[Any]) -> str:
        items = [str(part) for part in parts]
        if sum(len(item) for item in items) > MAX_OUTPUT:
            raise _too_big("joining text")
        return str(self.built("".join(items)))

    # --- the hooks the sandbox offers --------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.step()
        check_binop(operator, left, right)
        return self.built(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.step()
        _check_arguments(args, kwargs)
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        if isinstance(owner, str):
            if name in ("format", "format_map"):
                check_format(owner)
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            elif name == "join" and args:
                _check_join(owner, args[0])
        return __self.built(super().call(__context, __obj, *args, **kwargs))

    def _bounded_filter(self, function: Callable[..., Any]) -> Callable[..., Any]:
        name = getattr(function, "__name__", "")
        passes_first = hasattr(function, "jinja_pass_arg")

        @functools.wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.step()
            value, rest = (args[1:2], args[2:]) if passes_first else (args[:1], args[1:])
            _check_arguments(rest, kwargs)
            if name == "do_format" and value and isinstance(value[0], str):
                check_format(value[0])
            elif name == "do_replace" and value and len(rest) >= 2:
                _check_replace(value[0], rest[0], rest[1])
            elif name in ("do_join", "sync_do_join") and value:
                _check_join(rest[0] if rest else kwargs.get("d", ""), value[0])
            return self.built(function(*args, **kwargs))

        return bounded

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every loop iteration calls the step function, so loops count against the budget."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            call = nodes.Call(nodes.Name(_STEP, "load"), [], [], None, None)
            statement = nodes.ExprStmt(call).set_lineno(loop.lineno)
            loop.body.insert(0, statement)
        return tree
