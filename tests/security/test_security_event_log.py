"""Issue 14, findings 10 and 7: someone who can write the database (a restored stolen backup, a
compromised database account) but holds neither the signing key nor every archive copy. The
event log is anchored by signed checkpoints in the archive; `events verify` names truncation,
forks and bad signatures, lists what is not yet anchored; publication verifies from the newest
checkpoint instead of the first event (docs/design/event-log.md, "Anchoring")."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from emeritus.archive import CHECKPOINTS_OBJECT, Anchor, Archive, object_root, replicate
from emeritus.cli import app
from emeritus.corner import Channels, Review, Reviewer, publish, write_draft
from emeritus.lifecycle import Registry
from emeritus.store import (
    Checkpoint,
    KeyRefused,
    SigningKey,
    Store,
    append_event,
    canonical_json,
    digest_of,
    iso,
    list_events,
    utc_now,
    verify_chain,
)
from emeritus.store.events import EventRow
from test_corner import ESSAY, MODEL, Scripted, opened

CHECKPOINTS_OID = "urn:emeritus:event-checkpoints"


def _append(store: Store, count: int) -> None:
    with store.transaction() as session:
        for n in range(count):
            append_event(
                session, kind="test.step", subject="model:a", actor="tester", payload={"n": n}
            )


def _sql(store: Store, statement: str, **params: object) -> None:
    with store.db.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def _cli(store: Store, *args: str, code: int = 0) -> str:
    runner = CliRunner(env={"EMERITUS_DATABASE_URL": store.settings.database_url})
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _verify_json(store: Store, code: int = 0) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_cli(store, "events", "verify", "--json", code=code))
    return report


def _checkpoint_file(store: Store) -> Path:
    root = store.settings.archive_dir / object_root(CHECKPOINTS_OID)
    inventory = json.loads((root / "inventory.json").read_text())
    digest = next(
        d
        for d, paths in inventory["versions"][inventory["head"]]["state"].items()
        if "checkpoints.jsonl" in paths
    )
    return root / inventory["manifest"][digest][0]


def _rehash_from(store: Store, first: int) -> None:
    """What the attacker does after editing event `first`: recompute every digest after it by
    the documented canonical form, and the head, so the chain verifies on its own."""
    with store.transaction() as session:
        rows = session.scalars(
            sa.select(EventRow).where(EventRow.seq >= first).order_by(EventRow.seq)
        ).all()
        prev = session.scalar(sa.select(EventRow.digest).where(EventRow.seq == first - 1))
        for row in rows:
            row.prev_digest = str(prev)
            row.digest = digest_of(
                {
                    "actor": row.actor,
                    "kind": row.kind,
                    "payload": json.loads(row.payload),
                    "prev_digest": row.prev_digest,
                    "seq": row.seq,
                    "subject": row.subject,
                    "time": iso(row.time),
                    "v": row.v,
                }
            )
            prev = row.digest
        session.flush()
    _sql(store, "UPDATE event_chain_head SET digest = :d WHERE id = 1", d=prev)


def test_truncation_is_named(store: Store) -> None:
    _append(store, 6)
    first = _verify_json(store)
    assert first["ok"] and first["anchored"]["seq"] == 6
    _append(store, 4)
    assert _verify_json(store)["anchored"]["seq"] == 11  # 6 + the checkpoint's ingest + 4
    # The attacker deletes the newest events and moves the head back to the last remaining one.
    _sql(store, "DELETE FROM events WHERE seq > 8")
    _sql(
        store,
        "UPDATE event_chain_head SET seq = 8, "
        "digest = (SELECT digest FROM events WHERE seq = 8) WHERE id = 1",
    )
    _sql(store, "DELETE FROM event_chain_verified")  # and the database's own record of it
    with store.transaction() as session:
        assert verify_chain(session).ok  # the chain alone cannot tell
    line = _cli(store, "events", "verify", code=5)
    assert "truncated: the log ends at event 8" in line and "vouches for event 11" in line
    report = _verify_json(store, code=5)
    assert not report["ok"] and report["first_bad"] == 9 and report["anchored"] is None


def test_a_rewrite_is_a_fork(store: Store) -> None:
    _append(store, 5)
    assert _verify_json(store)["ok"]
    _append(store, 2)
    _sql(store, "UPDATE events SET actor = 'mallory' WHERE seq = 3")
    _rehash_from(store, 3)
    with store.transaction() as session:
        assert verify_chain(session).ok
    report = _verify_json(store, code=5)
    assert report["problem"].startswith("event chain broken: fork: event 5 has digest")
    assert report["first_bad"] == 5
    # Publication, which walks only from the checkpoint, is refused the same way.
    with store.transaction() as session:
        assert "fork" in str(verify_chain(session, since=(5, _signed_digest(store, 5))).problem)


def _signed_digest(store: Store, seq: int) -> str:
    newest = Anchor(Archive(store)).newest()
    assert newest.checkpoint is not None and newest.checkpoint.seq >= seq
    return newest.checkpoint.digest


def test_tampered_or_forged_checkpoints_are_refused(store: Store, tmp_path: Path) -> None:
    _append(store, 3)
    assert _verify_json(store)["ok"]
    path = _checkpoint_file(store)
    original = path.read_text()
    line = json.loads(original.splitlines()[-1])
    # An edited checkpoint (a higher seq, to hide a truncation later): the signature fails.
    path.chmod(0o644)
    path.write_text(canonical_json({**line, "seq": 2}) + "\n")
    report = _verify_json(store, code=5)
    assert "bad signature" in report["problem"] and report["anchored"] is None
    # One signed with a key of the attacker's own: refused by name.
    mallory = SigningKey.open(tmp_path / "mallory")
    forged = Checkpoint.sign(mallory, 3, line["digest"], utc_now())
    path.write_text(forged.to_line() + "\n")
    assert "signed by another key" in _cli(store, "events", "verify", code=5)
    path.write_text(original)
    # A forged record in the database's own row is not trusted either.
    _sql(store, "UPDATE event_chain_verified SET checkpoint = :c", c=forged.to_line())
    assert "database: checkpoint at event 3 is signed by another key" in _cli(
        store, "events", "verify", code=5
    )


def test_the_key_file_is_private_and_refused_when_it_is_not(store: Store) -> None:
    key = store.signing_key()
    path = store.settings.home / "keys" / "signing.ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert SigningKey.open(store.settings.home).public == key.public  # created once, reused
    for loose in (0o640, 0o604, 0o620):
        path.chmod(loose)
        with pytest.raises(KeyRefused, match=f"mode {loose:04o}"):
            SigningKey.open(store.settings.home)
        assert f"mode {loose:04o}" in _cli(store, "events", "verify", code=5)
    with store.transaction() as session:
        assert list_events(session, kind="archive.") == []  # nothing was anchored with it


def test_events_after_the_checkpoint_are_listed_as_not_anchored(store: Store) -> None:
    _append(store, 4)
    assert _verify_json(store)["anchored"]["seq"] == 4
    _append(store, 3)
    report = _verify_json(store)
    assert report["checkpoint"]["seq"] == 4 and report["checkpoint"]["sources"] == [
        "primary",
        "database",
    ]
    unanchored = report["not_anchored"]
    assert unanchored["count"] == 4  # the checkpoint's own ingest, then the three
    assert [e["seq"] for e in unanchored["events"]] == [5, 6, 7, 8]
    assert unanchored["events"][0]["kind"] == "archive.ingested"
    text = _cli(store, "events", "verify")
    assert "1 event(s) after it not yet anchored" in text  # only the last verify's ingest


def test_a_replica_keeps_the_anchor_when_the_primary_loses_it(store: Store, tmp_path: Path) -> None:
    archive = Archive(store)
    archive.add_replica((tmp_path / "replica").as_uri())
    _append(store, 5)
    assert _verify_json(store)["ok"]
    replicate(archive)
    # The attacker controls the database and the primary copy, not the replica.
    shutil.rmtree(store.settings.archive_dir / object_root(CHECKPOINTS_OID))
    _sql(store, "DELETE FROM event_chain_verified")
    _sql(store, "DELETE FROM events WHERE seq > 3")
    _sql(
        store,
        "UPDATE event_chain_head SET seq = 3, "
        "digest = (SELECT digest FROM events WHERE seq = 3) WHERE id = 1",
    )
    assert "truncated: the log ends at event 3" in _cli(store, "events", "verify", code=5)


def test_publication_verifies_from_the_checkpoint(store: Store) -> None:
    Registry(store).add(MODEL, family="SmolLM2")
    opened(Channels(store))
    _append(store, 400)
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    assert draft is not None
    Review(store).approve(draft.id, reviewer=Reviewer("ana", "console"))
    first = publish(store, MODEL)  # no checkpoint yet: the whole chain
    assert first.walked >= 400 and first.anchored is not None
    _append(store, 5)
    second = publish(store, MODEL)
    # The checkpoint's event, the checkpoint's ingest, five events: not the 400 before them.
    assert second.walked <= 10 and second.anchored is not None
    assert second.anchored > first.anchored
    with store.transaction() as session:
        assert verify_chain(session).ok


def test_lifecycle_tick_anchors_at_least_daily(store: Store) -> None:
    _append(store, 2)
    ticked = json.loads(_cli(store, "lifecycle", "tick", "--json"))
    assert ticked["anchored"]["seq"] == 2
    again = json.loads(_cli(store, "lifecycle", "tick", "--json"))
    assert again["anchored"] is None  # not a day old yet
    later = (utc_now() + timedelta(days=1, minutes=1)).isoformat()
    assert json.loads(_cli(store, "lifecycle", "tick", "--now", later, "--json"))["anchored"]
    assert CHECKPOINTS_OBJECT in [o.model for o in Archive(store).objects()]


def test_a_forged_recent_checkpoint_in_the_database_does_not_stop_the_daily_anchor(
    store: Store, tmp_path: Path
) -> None:
    """The tick trusts the database's checkpoint to say that none is due only when this home's
    key signed it: a forged, recent one cannot hold anchoring off."""
    _append(store, 2)
    assert json.loads(_cli(store, "lifecycle", "tick", "--json"))["anchored"]["seq"] == 2
    _append(store, 1)
    later = utc_now() + timedelta(days=1, minutes=1)
    mallory = SigningKey.open(tmp_path / "mallory")
    forged = Checkpoint.sign(mallory, 3, "sha256:" + "0" * 64, later)
    _sql(store, "UPDATE event_chain_verified SET checkpoint = :c", c=forged.to_line())
    assert not store.anchored_within(timedelta(days=1), later)
    ticked = _cli(store, "lifecycle", "tick", "--now", later.isoformat(), "--json", code=5)
    assert "signed by another key" in ticked  # refused by name, and not taken as anchored
