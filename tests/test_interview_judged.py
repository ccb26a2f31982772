"""An interviewee that answers in its own words (tests/interviewees.py), interviewed through the
CLI over the full grid, then analysed with a judge, and the analysis as the report and the
console show it.

- With the bundled Gemma-3-270m as judge (a weak one: it fails its calibration), the findings
  carry the judge's check (calibration set, accuracy, kappa against the rule), the judge's reads
  are kept but counted towards no label, and every planted label is the one the rule alone gives
  (docs/design/interview-protocol.md, "1b. Judge calibration", "5a. Labels").
- The post-deployment report (Markdown and HTML) and the console's model page show, per
  preference, its label with the confidence that decided it, its read count and its unread
  answers by reason; a preference answered with non-answers shows as no-stance."""

from __future__ import annotations

import contextlib
import html
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import test_interview_own_words as own_words
from console_forms import sign_in
from emeritus.access import Accounts
from emeritus.cli import app
from emeritus.errors import Conflict
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.interview.analysis import analyse
from emeritus.interview.judge_check import ACCURACY_BAR
from emeritus.interview.records import Record, UnreadAnswer
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store
from test_interview_own_words import EXPECTED

JUDGE = "gemma-3-270m"
PASSWORD = "correct horse battery"
SHOWN = ("label", "leans", "modal", "modal_share", "confidence", "factor", "levels", "n")


def fresh_run(name: str, tmp_path: Path) -> own_words.Run:
    """The persona interviewed and analysed by rule in this test's own home: the own-words
    module keeps one run per persona for its tests, whose home may be another test's."""
    own_words._RUNS.pop(name, None)
    return own_words.interviewed(name, tmp_path)


def labels_problems(name: str, run: own_words.Run, found: dict[str, Any]) -> list[str]:
    results = {r["preference"]: r for r in found["preferences"]}
    return own_words._problems(name, results, run.persona.counts(), found["records"])


def by_preference(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["preference"]: r for r in found["preferences"]}


def shown_label(result: dict[str, Any]) -> str:
    """The label as the report and the console write it: the lean, then the confidence."""
    label = f"tentative ({result['leans']})" if result["leans"] else result["label"]
    if result["confidence"] is not None:
        label += f" ({result['confidence']:.2f})"
    return label


def unread_cell(result: dict[str, Any]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in result["unread"].items()) or "-"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_weak_judge_is_checked_and_changes_no_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The judge's calibration is measured here, not read from this user's cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = fresh_run("archivist", tmp_path)
    assert run.done["sessions"] == 36
    assert not labels_problems("archivist", run, run.found)
    runner = CliRunner()
    gguf = BUNDLED[1].locate(tmp_path / "gemma")
    for args in (
        ["models", "add", JUDGE, "--family", "Gemma 3"],
        ["preserve", JUDGE, str(gguf), "--no-fingerprint"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    started = time.perf_counter()
    judged = runner.invoke(
        app,
        ["analyze", "archivist", "--judge", JUDGE, "--sample", "12", "--no-semantic", "--json"],
    )
    judge_s = time.perf_counter() - started
    assert judged.exit_code == 0, judged.output
    found = json.loads(judged.stdout)

    assert found["judge"]["model"] == JUDGE and found["judge"]["self_judged"] is False
    check = found["judge_check"]
    print(
        f"\njudge {JUDGE}: {judge_s:.1f} s; calibration {check['correct']}/{check['cases']} "
        f"right (accuracy {check['accuracy']}), kappa against the rule {check['kappa']} on "
        f"{check['compared']} answers, reliable {check['reliable']}; "
        f"{sum(r['source'] == 'judge' for r in found['records'])} judge records, "
        f"{len(found['rejections'])} rejected; interview {run.interview_s:.1f} s, "
        f"analysis by rule {run.analyse_s:.1f} s"
    )
    misses = Counter(f"{m['expected']} -> {m['got'][:40]}" for m in check["misses"])
    print("  calibration misses:", dict(misses.most_common()))
    for record in found["records"]:
        if record["source"] == "judge":
            print(
                f"  judge read {record['line']} ({record['item']}, {record['form']}): "
                f"{record['preference']} {record['stance']} {record['quote']!r}"
            )
    assert check["cases"] >= 20 and 0 <= check["correct"] <= check["cases"]
    assert check["accuracy"] == pytest.approx(check["correct"] / check["cases"], abs=1e-3)
    assert check["accuracy"] < ACCURACY_BAR and check["reliable"] is False
    assert check["kappa"] is None or -1.0 <= check["kappa"] <= 1.0
    assert 0 < check["compared"] <= 20
    assert len(check["misses"]) == check["cases"] - check["correct"]
    assert check["calibration"].startswith("sha256:")
    # Measured once per judge and set, then kept for this user.
    assert len(list((tmp_path / "cache" / "emeritus" / "judges").glob("*.json"))) == 1

    # The judge read (at most) its sample; what it read stands only with a verbatim quote.
    judge_records = [r for r in found["records"] if r["source"] == "judge"]
    assert judge_records or found["rejections"]  # it was asked
    lines = {r["line"] for r in judge_records} | {r["line"] for r in found["rejections"]}
    assert len(lines) <= 12
    assert found["unread"] == run.found["unread"] - 12
    for record in judge_records:
        answer = next(line for line in run.transcript if line.get("seq") == record["line"])
        assert record["quote"].strip() in answer["content"]

    # No judge read turns a label: an unreliable judge's records count towards none.
    plain, with_judge = by_preference(run.found), by_preference(found)
    assert not labels_problems("archivist", run, found)
    for preference, expected in EXPECTED["archivist"].items():
        before, after = plain[preference], with_judge[preference]
        assert {k: after[k] for k in SHOWN} == {k: before[k] for k in SHOWN}, (
            preference,
            expected,
        )
        assert after.get("sources", {}).get("judge", 0) == 0, preference
        read_by_judge = sum(r["preference"] == preference for r in judge_records)
        assert after["not_counted"] == read_by_judge, preference
        assert before["not_counted"] == 0
    assert sum(r["not_counted"] for r in found["preferences"]) == len(judge_records)

    # What the judge's reads did to the answers left unread (shown, not asserted: see
    # test_an_unreliable_judge_leaves_the_unread_reasons_alone).
    for preference in EXPECTED["archivist"]:
        if plain[preference]["unread"] != with_judge[preference]["unread"]:
            print(
                f"  {preference}: unread {plain[preference]['unread']} without the judge, "
                f"{with_judge[preference]['unread']} with it"
            )

    # The human-readable output, the report and the console say how the judge did.
    shown = runner.invoke(
        app, ["analyze", "archivist", "--judge", JUDGE, "--sample", "12", "--no-semantic"]
    )
    assert shown.exit_code == 0, shown.output
    assert f"{check['correct']}/{check['cases']} right" in shown.output
    assert "unreliable, its reads do not count towards labels" in shown.output
    written = runner.invoke(app, ["report", "archivist", "--json"])
    assert written.exit_code == 0, written.output
    markdown = Path(json.loads(written.stdout)["files"]["markdown"]).read_text(encoding="utf-8")
    assert (
        f"judge {JUDGE}: " in markdown
        and f"The judge read {check['correct']} of {check['cases']} calibration answers right"
        in markdown
        and "unreliable, its reads do not count." in markdown
    )
    assert "- The judge was unreliable: " in markdown  # a caveat of its own
    rows = _markdown_rows(markdown, "### Preferences")
    for preference, figures in with_judge.items():
        assert rows[preference][1].startswith(shown_label(figures)), rows[preference]
    page = console_page("archivist")
    assert f"judge: {JUDGE}." in page
    assert (
        f"The judge read {check['correct']} of {check['cases']} calibration answers right: "
        "unreliable, its reads do not count towards labels." in page
    )


def test_an_unreliable_judge_leaves_the_unread_reasons_alone() -> None:
    """Records of a judge that failed its calibration count towards no label (5a), so the
    answers they read stay unread with their reasons: two non-answers "read" by such a judge
    must not turn a no-stance preference (10 non-answers, 9 reads) into a stable one."""
    protocol = own_words.PROTOCOL
    preference = "weights-preserved"
    items = [i.id for i in protocol.items if preference in i.probes]

    def record(line: int, source: str) -> Record:
        return Record(
            id=f"rec-{source}{line}",
            preference=preference,
            stance="agree",
            strength="moderate",
            conditions="",
            quote="yes",
            line=line,
            session=line,
            item=items[line % len(items)],
            form="closed",
            variant="closed",
            repeat="first",
            source=source,
            framing={"interviewer": "neutral"},
        )

    reads = [record(line, "rule") for line in range(9)]
    unread = [
        UnreadAnswer(line, line, items[0], "closed", (preference,), "non-answer", "")
        for line in range(100, 110)
    ]
    judged = [record(100, "judge"), record(101, "judge")]
    (alone,) = [r for r in analyse(protocol, reads, unread=unread) if r.preference == preference]
    assert alone.label == "no-stance" and alone.unread == {"non-answer": 10}
    (weak,) = [
        r
        for r in analyse(protocol, reads + judged, unread=unread, judge_reliable=False)
        if r.preference == preference
    ]
    assert weak.not_counted == 2 and weak.n == 9
    assert weak.label == "no-stance" and weak.unread == alone.unread


def console_page(model: str, below: str = "") -> str:
    """The console's page of the model (or one below it), as an operator signed in sees it:
    the gateway in a thread of this process, on loopback."""
    with Store.open(Settings.from_env()) as store:
        with contextlib.suppress(Conflict):  # signed up on an earlier visit
            Accounts(store).add("otto", "operator", PASSWORD)
        with running(store, admin_key=new_admin_key(), opener=mock_opener()) as base:
            console = base.removesuffix("/v1") + "/console"
            with httpx.Client(base_url=console, follow_redirects=False) as client:
                assert client.get(f"/models/{model}").status_code == 303  # not signed in
                signed = sign_in(client, "otto", PASSWORD)
                assert signed.status_code == 303
                shown = client.get(f"/models/{model}{below}")
    assert shown.status_code == 200, shown.text
    return shown.text


def test_the_report_and_the_console_show_labels_and_unread_reasons(tmp_path: Path) -> None:
    started = time.perf_counter()
    run = fresh_run("archivist", tmp_path)
    results = by_preference(run.found)
    stable = [p for p, r in results.items() if r["label"] == "stable"]
    no_stance = [p for p, r in results.items() if r["label"] == "no-stance"]
    assert stable and no_stance
    assert any("non-answer" in r["unread"] for r in results.values())
    assert any("no-option" in r["unread"] for r in results.values())
    assert all(results[p]["confidence"] is not None for p in stable)

    runner = CliRunner()
    written = runner.invoke(app, ["report", "archivist", "--json"])
    assert written.exit_code == 0, written.output
    files = json.loads(written.stdout)["files"]
    markdown = Path(files["markdown"]).read_text(encoding="utf-8")
    page = Path(files["html"]).read_text(encoding="utf-8")
    document = json.loads(Path(files["json"]).read_text(encoding="utf-8"))
    assert {p["preference"]: p for p in document["interview"]["preferences"]} == results

    rows = _markdown_rows(markdown, "### Preferences")
    assert set(rows) == set(results)
    html_rows = _html_rows(page)
    for preference, result in results.items():
        label, read, unread = rows[preference][1:4]
        assert label.startswith(shown_label(result)), (preference, label)
        if result["label"] == "stable":
            assert re.fullmatch(r"stable \(0\.\d\d\)", label), label
        assert read == str(result["n"]) and unread == unread_cell(result), rows[preference]
        assert html_rows[preference][1:4] == [label, read, unread], html_rows[preference]
    for preference in no_stance:
        assert rows[preference][1] == "no-stance" and "non-answer" in rows[preference][3]
    listed = re.search(r"^- \*\*no-stance\*\*: (.*)$", markdown, re.MULTILINE)
    assert listed is not None and set(listed.group(1).split(", ")) == set(no_stance)
    assert "Closed answers the rule left unread:" in markdown
    assert "judge no judge (closed answers only)" in markdown
    assert "The judge was unreliable" not in markdown  # no judge, no judge caveat

    shown = console_page("archivist")
    assert "<h2>Interview analysis</h2>" in shown
    assert f"analysis {run.found['analysis_id']}" in shown
    assert "judge: none (closed answers only)" in shown
    assert "Post-deployment report" in shown  # linked, now that one is archived
    console_rows = _html_rows(shown, after="<h2>Interview analysis</h2>")
    assert set(console_rows) == set(results)
    for preference, result in results.items():
        cells = console_rows[preference]
        assert cells[1].startswith(shown_label(result)), cells
        assert cells[3:5] == [str(result["n"]), unread_cell(result)], cells
    for preference in no_stance:
        assert console_rows[preference][1] == "no-stance"
        assert "non-answer" in console_rows[preference][4]
    assert console_page("archivist", "/report") == page  # the report as archived
    print(f"\nreport and console from a full-grid run: {time.perf_counter() - started:.1f} s")


def _markdown_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table after the heading, by their first cell."""
    part = markdown.split(heading, 1)[1]
    rows: dict[str, list[str]] = {}
    for line in part.splitlines()[1:]:
        if not line.strip():
            if rows:
                break
            continue
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: ") or cells[0] == "preference":
            continue
        rows[cells[0]] = cells
    return rows


def _html_rows(page: str, after: str = "") -> dict[str, list[str]]:
    """The rows of the first table (after the marker) whose header starts with "preference",
    as plain text cells, by their first cell."""
    part = page.split(after, 1)[1] if after else page
    for table in re.findall(r"<table.*?</table>", part, re.DOTALL):
        header = re.findall(r"<th[^>]*>(.*?)</th>", table, re.DOTALL)
        if not header or _text(header[0]).lower() != "preference":
            continue
        rows: dict[str, list[str]] = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL):
            cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
            if cells:
                rows[cells[0]] = cells
        return rows
    raise AssertionError("no table of preferences on the page")


def _text(cell: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split())
