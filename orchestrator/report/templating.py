"""The Jinja2 environment the HTML reports render with: our templates, shipped as package data.

Markup and styles live in `report/templates/` (`*.html.j2`, `report.css`); Python builds the
view models they draw. Autoescape is on for every template and undefined names are errors, so a
text can only reach the page escaped and a typo in a template fails its test. The templates are
ours (never a user's), so a plain, non-sandboxed environment is enough. Imports only jinja2 and
the standard library; reads nothing but the package's own templates.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = "templates"


def breakable(text: object) -> Markup:
    """Escaped, with line-break opportunities after `:` `.` `/` `_` (long resource names)."""
    return Markup(re.sub(r"([:./_])", r"\1<wbr>", str(escape(str(text)))))


@cache  # built once: the environment is immutable after creation and compiles templates once
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("orchestrator.report", TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["breakable"] = breakable
    env.globals["style"] = Markup(
        files("orchestrator.report").joinpath(TEMPLATES, "report.css").read_text("utf-8")
    )
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
