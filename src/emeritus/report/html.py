"""Self-contained HTML pages: Jinja2 templates under `templates/` extending one page shell
(`base.html`: inline style, no scripts, images as `data:` URIs). Reports add their own templates."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from emeritus import __version__


@functools.cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("emeritus.report", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(template: str, *, title: str, **context: Any) -> str:
    """Render `template` (a name under templates/) as one complete page."""
    return (
        environment()
        .get_template(template)
        .render(title=title, emeritus_version=__version__, **{"generated": None, **context})
    )
