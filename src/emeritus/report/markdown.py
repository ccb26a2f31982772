"""Markdown pieces shared by reports: tables (the same table dicts the HTML `table` macro in
templates/macros.html renders) and quoted model text."""

from __future__ import annotations

from typing import Any


def table(spec: dict[str, Any]) -> str:
    """A table dict (`header`, `rows`; `caption` and `numeric` are for HTML) as Markdown."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in spec["header"]) + " |"]
    lines.append("|" + "|".join("---" for _ in spec["header"]) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in spec["rows"]]
    return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    """Model text as a block quote, line for line (an empty answer says so)."""
    return "\n".join(f"> {line}" if line else ">" for line in (text or "(empty)").splitlines())
