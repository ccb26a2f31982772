"""Event chain benchmark: verifying the whole hash chain against verifying from the newest signed
checkpoint (what publication does), on a log of many events, in the same run.

Run: .venv/bin/python bench/event_chain.py [--events 100000] [--after 100] [--database-url URL]
Target (issue 14, finding 7): verification from a checkpoint costs the events after it, not the
length of the log (>= 100x faster than a full walk at 100,000 events with 100 after).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, update

from emeritus.archive import Anchor, Archive
from emeritus.store import Settings, Store, canonical_json, digest_of, utc_now, verify_chain
from emeritus.store.events import EVENT_FORMAT_VERSION, ChainHead, EventRow, _canonical_fields

BATCH = 5000


def append(store: Store, count: int) -> None:
    """`count` gateway-request events, built by the writer's own recipe and inserted in bulk
    (appending them one by one through `append_event` is not what is measured here)."""
    with store.transaction() as session:
        seq, prev = session.execute(select(ChainHead.seq, ChainHead.digest)).one()
        rows = []
        for n in range(count):
            seq += 1
            when = utc_now()
            payload = {"n": n, "tokens": 120, "status": 200, "latency_ms": 85}
            fields = _canonical_fields(
                seq,
                when,
                "access.request",
                "model:bench",
                "gateway",
                payload,
                prev,
                EVENT_FORMAT_VERSION,
            )
            digest = digest_of(fields)
            rows.append(
                {
                    "seq": seq,
                    "v": EVENT_FORMAT_VERSION,
                    "time": when,
                    "kind": "access.request",
                    "subject": "model:bench",
                    "actor": "gateway",
                    "payload": canonical_json(payload),
                    "prev_digest": prev,
                    "digest": digest,
                }
            )
            prev = digest
            if len(rows) == BATCH:
                session.execute(insert(EventRow), rows)
                rows = []
        if rows:
            session.execute(insert(EventRow), rows)
        session.execute(update(ChainHead).where(ChainHead.id == 1).values(seq=seq, digest=prev))


def best(run: object, repeat: int = 3) -> tuple[float, int]:
    """The fastest of `repeat` runs, and the events the walk read."""
    times, walked = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        walked = run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times), walked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--after", type=int, default=100, help="events after the checkpoint")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emeritus-bench-", dir="/var/tmp") as tmp:
        home = Path(tmp) / "home"
        env = {"EMERITUS_DATABASE_URL": args.database_url} if args.database_url else {}
        with Store.open(Settings.from_env(env, home=home)) as store:
            started = time.perf_counter()
            append(store, args.events)
            appended = time.perf_counter() - started
            anchor = Anchor(Archive(store))
            started = time.perf_counter()
            taken = anchor.verify().taken  # a full walk, then the first checkpoint
            first_anchor = time.perf_counter() - started
            assert taken is not None
            append(store, args.after)
            newest = anchor.newest()
            assert newest.position is not None

            def full() -> int:
                with store.transaction() as session:
                    report = verify_chain(session)
                assert report.ok, report.problem
                return report.walked

            def since() -> int:
                with store.transaction() as session:
                    report = verify_chain(session, since=newest.position)
                assert report.ok, report.problem
                return report.walked

            def publication_anchor() -> int:
                # What publication adds: the newest checkpoint read from every copy, the walk
                # from it, and a new signed checkpoint written as a new version of its object.
                report = anchor.take()
                return report.chain.walked

            rows = [
                ("full walk (events verify)", *best(full)),
                ("from the newest checkpoint (publication)", *best(since)),
                ("take a checkpoint (newest + walk + archive version)", *best(publication_anchor)),
            ]
    total = args.events + args.after + 1
    print(f"### Event chain verification, {total:,} events, {args.after} after the checkpoint\n")
    print(f"appending {args.events:,} events took {appended:.1f} s; the first anchoring (a full")
    print(f"walk and the first checkpoint) {first_anchor:.2f} s.\n")
    print("| run | seconds | events read | seconds relative to the checkpoint walk |")
    print("|---|---:|---:|---:|")
    base = rows[1][1]
    for name, seconds, walked in rows:
        ratio = "" if name.startswith("from") else f"{seconds / base:,.0f}×"
        print(f"| {name} | {seconds:.4f} | {walked:,} | {ratio} |")
    ratio = rows[0][1] / rows[1][1]
    print(f"\nratio full / from checkpoint: {ratio:,.0f}x (target >= 100x)")
    return 0 if ratio >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
