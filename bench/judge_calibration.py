"""The bundled judges on the calibration set (src/emeritus/interview/calibration.yaml): each
bundled model reads the set's answers through the judge's grammar-constrained prompt, at
temperature 0, and its accuracy decides whether a run it judges may count its reads. Also a
fixed baseline in the same run, the share a judge that always answers the commonest stance
would get, so the figures have something to stand against.

Run: .venv/bin/python bench/judge_calibration.py [--threads 2]
Bar (issue 13): accuracy >= 0.8 for a judge's reads to count towards labels.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from emeritus.archive import Archive
from emeritus.interview import Judge
from emeritus.interview.judge_check import ACCURACY_BAR, calibrate, calibration_cases
from emeritus.lifecycle import Registry
from emeritus.runtime.bundled import BUNDLED
from emeritus.runtime.preserved import open_preserved
from emeritus.store import Settings, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cases = calibration_cases()
    commonest, count = Counter(c["stance"] for c in cases).most_common(1)[0]
    print(f"calibration set: {len(cases)} answers; always '{commonest}': {count / len(cases):.2f}")
    print(f"{'judge':<24} {'right':>7} {'accuracy':>9} {'seconds':>8}  verdict")
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        with Store.open(Settings.from_env({}, home=home)) as store:
            archive, registry = Archive(store), Registry(store)
            for bundled in BUNDLED:
                registry.add(bundled.name, family=bundled.family)
                archive.preserve(bundled.name, [bundled.locate(Path(scratch))])
                backend, _ = open_preserved(
                    archive, bundled.name, n_ctx=2048, n_threads=args.threads
                )
                try:
                    start = time.perf_counter()
                    total, correct, misses, _ = calibrate(Judge(backend, bundled.name))
                    took = time.perf_counter() - start
                finally:
                    backend.close()
                accuracy = correct / total
                verdict = "reliable" if accuracy >= ACCURACY_BAR else "unreliable"
                print(
                    f"{bundled.name:<24} {correct:>3}/{total:<3} {accuracy:>9.2f} {took:>8.1f}  "
                    f"{verdict}"
                )
                wrong = Counter(f"{m['expected']}->{m['got'][:20]}" for m in misses)
                print("   misses:", ", ".join(f"{k} x{n}" for k, n in wrong.most_common()))


if __name__ == "__main__":
    main()
