"""Audit benchmark: a full fixity check of a preserved ~2 GiB model (sha512 and sha256 of every
file) against plain hashlib sha512 over the same files, in the same run.

Run: .venv/bin/python bench/audit.py [--gib 2] [--shards 8]
Target (issue 3): >= 0.9x the speed of plain sha512.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from common import make_sharded_model, table, timed

from emeritus.archive import Archive, object_root, verify
from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emeritus-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        source = work / "model"
        make_sharded_model(source, total_bytes=int(args.gib * 2**30), shards=args.shards)
        settings = Settings.from_env({}, home=work / "home")
        with Store.open(settings) as store:
            archive = Archive(store)
            Registry(store).add("bench")
            archive.preserve("bench", [source])
            obj = settings.archive_dir / object_root("urn:emeritus:model:bench")
            files = sorted(p for p in obj.rglob("*") if p.is_file())
            size = sum(f.stat().st_size for f in files)
            subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)

            def plain() -> None:
                for path in files:
                    digest = hashlib.sha512()
                    with path.open("rb") as handle:
                        while chunk := handle.read(8 << 20):
                            digest.update(chunk)

            def audit() -> None:
                assert verify(archive, "bench", full=True).ok

            rows = [
                ("emeritus verify --full (sha512 + sha256)", timed(audit)),
                ("hashlib sha512, one pass", timed(plain)),
            ]
    print(table("Full fixity audit", size, rows, rows[0][0]))
    ratio = rows[1][1] / rows[0][1]
    print(f"\nratio vs plain sha512: {ratio:.2f}x (target >= 0.9x)")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
