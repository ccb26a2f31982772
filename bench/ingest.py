"""Ingest benchmark: `emeritus preserve` against cp + sha512sum + sha256sum, and against ocfl-py
creating the same object, over the same generated ~2 GiB sharded safetensors model.

Run: .venv/bin/python bench/ingest.py [--gib 2] [--shards 8]
Targets (issue 3): >= 1.5x faster than the coreutils pipeline, not slower than ocfl-py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ocfl
from common import make_sharded_model, table, timed

from emeritus.archive import Archive
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
        files = make_sharded_model(source, total_bytes=int(args.gib * 2**30), shards=args.shards)
        size = sum(f.stat().st_size for f in files)
        # Warm the page cache for every contender alike.
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)

        def coreutils() -> None:
            target = work / "cp"
            subprocess.run(["cp", "-r", str(source), str(target)], check=True)
            copies = sorted(str(p) for p in target.iterdir())
            subprocess.run(["sha512sum", *copies], stdout=subprocess.DEVNULL, check=True)
            subprocess.run(["sha256sum", *copies], stdout=subprocess.DEVNULL, check=True)
            subprocess.run(["sync"], check=True)

        def ocfl_py() -> None:
            obj = ocfl.Object(identifier="urn:emeritus:model:bench", fixity=["sha256"])
            obj.create(
                srcdir=str(source),
                objdir=str(work / "ocfl-py"),
                metadata=ocfl.VersionMetadata(message="bench", name="bench"),
            )
            subprocess.run(["sync"], check=True)

        settings = Settings.from_env({}, home=work / "home")
        with Store.open(settings) as store:
            Registry(store).add("bench")  # only registered models are preserved

        def emeritus() -> None:
            with Store.open(settings) as store:
                Archive(store).preserve("bench", [source])

        rows = [
            ("emeritus preserve", timed(emeritus)),
            ("cp + sha512sum + sha256sum", timed(coreutils)),
            ("ocfl-py Object.create (sha512 + sha256 fixity)", timed(ocfl_py)),
        ]
        for name in ("cp", "ocfl-py", "home"):
            shutil.rmtree(work / name, ignore_errors=True)
    print(table("Ingest", size, rows, "emeritus preserve"))
    ours, coreutils_s, ocfl_s = (r[1] for r in rows)
    print(
        f"\nratio vs coreutils: {coreutils_s / ours:.2f}x (target >= 1.5x); "
        f"vs ocfl-py: {ocfl_s / ours:.2f}x (target >= 1.0x)"
    )
    return 0 if coreutils_s / ours >= 1.5 and ocfl_s / ours >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
