"""The console's usage charts at the window widths people use, 1024 to 1920 pixels, in a real
browser: they fit the page with today's bars in view, each title is printed once (the caption,
never inside the image), and the cost axis reads as money (docs/design/console.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page

from browser import axe_violations
from emeritus.access import Gate, Grants, Keys, Policies, Principals, check_terms
from emeritus.report import CURRENCY, bar_chart, charts, money_labels
from emeritus.store import Store, utc_now
from test_console import ARTIFACTS, console, page, sign_in  # noqa: F401 (fixtures)
from test_corner import MODEL

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTHS = (1024, 1280, 1920)
MONEY = re.compile(rf"^-?{re.escape(CURRENCY)}\d{{1,3}}(,\d{{3}})*\.\d{{2,}}$")

# Where each chart image lies once it is scrolled into view, and what the page's text says.
LAYOUT = """() => {
  const root = document.documentElement;
  const images = Array.from(document.querySelectorAll('figure img')).map(img => {
    img.scrollIntoView({block: 'center'});
    const box = img.getBoundingClientRect();
    const hit = document.elementFromPoint(box.right - 3, box.top + box.height / 2);
    return {left: box.left, right: box.right, width: box.width, natural: img.naturalWidth,
            rightEdgeShown: hit === img};
  });
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, images,
          captions: Array.from(document.querySelectorAll('figcaption')).map(c => c.innerText),
          text: document.body.innerText};
}"""


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure a chart is made from, as it was when its PNG was written."""
    figures: list[Figure] = []
    write = charts._png

    def keep(figure: Figure) -> bytes:
        png = write(figure)  # drawn now: tick labels are set
        figures.append(figure)
        return png

    monkeypatch.setattr(charts, "_png", keep)
    return figures


def texts(figure: Figure) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def y_labels(figure: Figure) -> tuple[list[str], str]:
    """The y axis's tick labels and its offset text (the "1e-5" above the axis)."""
    axes = figure.axes[0]
    return [t.get_text() for t in axes.get_yticklabels()], axes.yaxis.get_offset_text().get_text()


def metered(store: Store, days: int = 10) -> None:
    """Requests on each of the last `days` days, today's the most, at a price per million tokens
    that makes a day's cost a few millionths."""
    Policies(store).set(MODEL, {"price": {"prompt": 0.05, "completion": 0.20}})
    Principals(store).add("rita", tier="research")
    Grants(store).grant("rita", MODEL, terms=check_terms(30, 1_000_000, "day", 1000))
    key = Keys(store).create("rita", [MODEL]).key
    gate, now = Gate(store), utc_now()
    for back in range(days):
        for _ in range(days - back):
            decision = gate.authorize(key, MODEL, now=now)
            assert decision.ticket is not None
            gate.record_usage(
                decision.ticket,
                prompt_tokens=12,
                completion_tokens=30,
                latency_s=0.05,
                now=now - timedelta(days=back),
            )
    gate.close()


def test_the_usage_charts_fit_the_page_at_1024_to_1920_pixels(
    store: Store,
    console: str,  # noqa: F811
    page: tuple[Page, list[str]],  # noqa: F811
    drawn: list[Figure],
) -> None:
    metered(store)
    tab, errors = page
    sign_in(tab, console, "otto")
    for width in WIDTHS:
        tab.set_viewport_size({"width": width, "height": 900})
        tab.goto(f"{console}/usage")
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        shown: dict[str, Any] = tab.evaluate(LAYOUT)
        assert shown["scrollWidth"] <= shown["clientWidth"], f"{width}: scrolls sideways"
        assert len(shown["images"]) == 2, width  # requests and cost per day
        for image in shown["images"]:
            assert image["natural"] > 0 and image["width"] > 0
            assert image["left"] >= 0 and image["right"] <= shown["clientWidth"], (width, image)
            assert image["rightEdgeShown"], f"{width}: today's bars are hidden"
        assert len(shown["captions"]) == 2
        for caption in shown["captions"]:
            assert shown["text"].count(caption) == 1, (width, caption)
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"console-usage-{width}.png"), full_page=True)
    assert axe_violations(tab) == []
    assert errors == []
    assert len(drawn) == 2 * len(WIDTHS)
    captions = shown["captions"]
    for figure in drawn:  # no title is drawn into an image as well
        assert not [t for t in texts(figure) if any(c in t for c in captions)]
    costs = [f for f in drawn if "cost" in f.axes[0].get_ylabel()]
    assert len(costs) == len(WIDTHS)
    for figure in costs:
        labels, offset = y_labels(figure)
        assert offset == "" and labels and all(MONEY.match(s) for s in labels), (labels, offset)
    for figure in drawn:
        if figure not in costs:  # requests are counted whole
            labels, _ = y_labels(figure)
            assert all(re.fullmatch(r"\d+", s) for s in labels), labels


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 1e-5, 2e-5, 3e-5], ["¤0.00000", "¤0.00001", "¤0.00002", "¤0.00003"]),
        ([0.0, 2.5e-6, 5e-6], ["¤0.0000000", "¤0.0000025", "¤0.0000050"]),
        ([0.0, 0.5, 1.0], ["¤0.00", "¤0.50", "¤1.00"]),
        ([0.0, 2000.0, 4000.0], ["¤0.00", "¤2,000.00", "¤4,000.00"]),
        ([0.1 + 0.2, 0.6], ["¤0.30", "¤0.60"]),
        ([4.2e-5], ["¤0.000042"]),
    ],
)
def test_money_labels_read_as_amounts(values: list[float], expected: list[str]) -> None:
    assert money_labels(values) == expected
    assert money_labels(values, "$")[-1] == expected[-1].replace("¤", "$")


def test_a_bar_chart_draws_no_title_and_shows_money_as_money(drawn: list[Figure]) -> None:
    days = [f"05-{d:02}" for d in range(1, 15)]
    chart = bar_chart(
        "Estimated cost per day",
        days,
        {"a": [i * 3e-6 for i in range(14)], "b": [i * 1e-6 for i in range(14)]},
        ylabel="estimated cost",
        money="$",
    )
    assert chart.title == "Estimated cost per day" and chart.png.startswith(b"\x89PNG")
    [figure] = drawn
    assert "Estimated cost per day" not in texts(figure)
    labels, offset = y_labels(figure)
    assert offset == "" and labels, labels
    assert all(s.startswith("$") and "e" not in s for s in labels), labels
    width, _ = figure.get_size_inches()
    assert width <= charts.MAX_WIDTH  # 14 days fit a page's column without shrinking the text
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()][-1] == "05-14"
