"""Pages in a real browser: Debian's chromium driven by Playwright (docs/design/architecture.md,
real components).
Shared by every test of a rendered page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class PageCheck:
    title: str
    console_errors: list[str]
    failed_requests: list[str]
    images: list[dict[str, object]]  # src (cut short), complete, naturalWidth
    screenshot: Path


def check_page(page_file: Path, screenshot: Path, *, width: int = 1100) -> PageCheck:
    """Open a page file headless, collect console errors and failed requests, wait for every
    image, and save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "make install installs Debian's chromium"
    errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: failed.append(r.url[:80]))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            images = page.evaluate(
                "Array.from(document.images).map(i => "
                "({src: i.src.slice(0, 40), complete: i.complete, naturalWidth: i.naturalWidth}))"
            )
            page.screenshot(path=str(screenshot), full_page=True)
            title = page.title()
        finally:
            browser.close()
    return PageCheck(title, errors, failed, images, screenshot)


AXE = sorted((Path(__file__).parent / "vendor").glob("axe-*.min.js"))


def axe_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2 A and AA violations on the open page (rule id, impact, how many
    elements), with the script from the npm registry (`make` fetches it)."""
    assert AXE, "make test fetches axe-core into tests/vendor"
    page.add_script_tag(path=str(AXE[-1]))
    found = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => `${v.id} (${v.impact}, ${v.nodes.length}): ${v.help}`)"
    )
    return list(found)
