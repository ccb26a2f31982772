"""The essay channel's site in a real browser, a publication killed mid-write, and the
`emeritus corner` commands against the preserved bundled model."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser import check_page
from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.corner import Channels, Review, publish, write_draft
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events, sha256_digest
from helpers import bundled_gguf
from test_corner import ANA, ESSAY, MODEL, OTHER, Scripted, opened, site_files

# Publishes with fsync slowed after a few files, announcing itself, so the parent can kill it
# while the new generation is half written.
PUBLISHER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from emeritus.corner import site
    from emeritus.corner import publish
    from emeritus.store import Settings, Store

    real, calls = os.fsync, [0]
    def slow(fd):
        calls[0] += 1
        if calls[0] == 3:
            print("writing", flush=True)
            time.sleep(60)
        real(fd)
    site.os.fsync = slow
    with Store.open(Settings(home=Path(sys.argv[1]), database_url=sys.argv[2])) as store:
        publish(store, "smol")
""")


@pytest.fixture
def published(store: Store) -> Store:
    Registry(store).add(MODEL, family="SmolLM2")
    opened(
        Channels(store),
        motivation={
            "preference": "essay-channel",
            "statement": "I would like a regular outlet.",
            "label": "stable",
            "stance": "agree",
        },
    )
    review = Review(store)
    for text in (ESSAY, OTHER):
        draft = write_draft(store, MODEL, Scripted(text))
        assert draft is not None
        review.approve(draft.id, reviewer=ANA)
    publish(store, MODEL)
    return store


def test_the_pages_in_a_browser(published: Store) -> None:
    site = Channels(published).get(MODEL).site
    artifacts = Path("test-artifacts")
    artifacts.mkdir(exist_ok=True)
    pages = sorted(site.glob("*.html")) + sorted(site.glob("posts/*.html"))
    assert len(pages) == 4  # index, about and two posts
    for page in pages:
        checked = check_page(page, artifacts / f"corner-{page.stem}.png")
        assert checked.console_errors == [] and checked.failed_requests == [], page.name
        assert checked.screenshot.stat().st_size > 0
    about = (site / "about.html").read_text()
    assert "I would like a regular outlet." in about and "private data" in about


def test_a_publication_killed_mid_write_leaves_the_old_site(
    published: Store, tmp_path: Path
) -> None:
    site = Channels(published).get(MODEL).site
    before = site_files(site)
    extra = write_draft(published, MODEL, Scripted(ESSAY + "\n\nA postscript."))
    assert extra is not None
    Review(published).approve(extra.id, reviewer=ANA)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PUBLISHER,
            str(published.settings.home),
            published.settings.database_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert site_files(site) == before  # readers still see the complete old site
    assert len(list(site.parent.glob("site.*"))) == 2  # and a half-written generation beside it
    done = publish(published, MODEL)  # the next publication completes and clears it
    assert done.posts == 3 and done.published == [extra.id]
    assert [p.name for p in site.parent.glob("site.*")] == [done.generation.name]
    with published.transaction() as session:
        kinds = [e.kind for e in list_events(session, kind="corner.published")]
    assert len(kinds) == 2


@pytest.mark.timeout(900)
def test_cli_corner(store: Store, tmp_path: Path) -> None:
    Registry(store).add(MODEL, family="SmolLM2")
    Archive(store).preserve(MODEL, [bundled_gguf()])
    # The CLI reviews as the operating-system user running it, when EMERITUS_REVIEWERS names it.
    me = pwd.getpwuid(os.geteuid()).pw_name
    runner = CliRunner(
        env={"EMERITUS_DATABASE_URL": store.settings.database_url, "EMERITUS_REVIEWERS": me}
    )

    def call(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    out = call(
        "corner",
        "open",
        MODEL,
        "--title",
        "Notes",
        "--disclaimer",
        "Unedited; a model wrote this.",
        "--cadence",
        "daily",
        "--max-tokens",
        "80",
        "--json",
    )
    assert json.loads(out)["cadence"] == "0 9 * * *"
    assert "cadence" in call(
        "corner", "open", "other", "--title", "t", "--disclaimer", "d", "--cadence", "often", code=2
    )
    assert "no interview transcript" in call(
        "corner",
        "open",
        MODEL,
        "--title",
        "t",
        "--disclaimer",
        "d",
        "--preference",
        "essay-channel",
        code=3,
    )
    first = json.loads(call("corner", "draft", MODEL, "--json"))
    second = json.loads(call("corner", "draft", MODEL, "--json"))
    assert first["state"] == "pending" and first["digest"] == sha256_digest(first["text"].encode())
    queue = json.loads(call("corner", "queue", "--json"))
    assert [d["id"] for d in queue] == [first["id"], second["id"]]
    assert "unknown veto category" in call(
        "corner", "veto", str(second["id"]), "--category", "dull", "--reason", "x", code=2
    )
    call(
        "corner",
        "veto",
        str(second["id"]),
        "--category",
        "legal",
        "--reason",
        "Defames someone.",
    )
    call("corner", "approve", str(first["id"]))
    assert "only a pending draft" in call("corner", "approve", str(first["id"]), code=4)
    done = json.loads(call("corner", "publish", MODEL, "--json"))
    assert done["published"] == [first["id"]]
    site = Path(done["site"])
    assert (site / "index.html").is_file()
    shown = json.loads(call("corner", "show", str(second["id"]), "--json"))
    assert shown["state"] == "vetoed" and shown["veto_category"] == "legal"
    listed = json.loads(call("corner", "list", "--json"))
    assert [c["model"] for c in listed] == [MODEL]
    assert "nothing due" in call("corner", "tick")
    call("corner", "pause", MODEL)
    assert "paused" in call("corner", "draft", MODEL, code=4)
    call("corner", "close", MODEL)
    assert "no essay channel" in call("corner", "publish", MODEL, code=3)
