"""Cold start: time to first token for a retired model served from the archive (the runtime finds
the model's content file through the archive and opens it by mmap) against llama-cpp-python
loading the same GGUF from a plain path, in the same run. Each measurement is a fresh process with
nothing loaded; the clock starts after the imports (and, for emeritus, once the store is open and
has answered a query), as in a running gateway that receives the first request for a model.

Run: .venv/bin/python bench/coldstart.py [--runs 5]
Target (issue 4): archive / plain <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from emeritus.archive import Archive
from emeritus.lifecycle import Registry
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store

MODEL = "smollm2-135m-instruct"

# Each child measures from the request to the first streamed token.
PLAIN = """
import sys, time
from llama_cpp import Llama
started = time.perf_counter()
llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, verbose=False)
stream = llm.create_chat_completion([{"role": "user", "content": "Hello"}], max_tokens=8,
                                    temperature=0, stream=True)
for chunk in stream:
    if chunk["choices"][0]["delta"].get("content"):
        break
print(time.perf_counter() - started)
"""

ARCHIVE = """
import sys, time
from pathlib import Path
import llama_cpp
from emeritus.archive import Archive
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.preserved import open_preserved
from emeritus.store import Settings, Store
with Store.open(Settings.from_env({}, home=Path(sys.argv[1]))) as store:
    Archive(store).objects()  # a running gateway has answered queries before this request
    started = time.perf_counter()
    backend, _ = open_preserved(Archive(store), sys.argv[2], n_threads=2, n_ctx=512)
    request = ChatRequest((Message("user", "Hello"),), Params(max_tokens=8))
    for chunk in backend.stream_chat(request):
        if chunk.text:
            break
print(time.perf_counter() - started)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="emeritus-bench-") as tmp:
        home = Path(tmp) / "home"
        gguf = BUNDLED[0].locate(Path(tmp))
        with Store.open(Settings.from_env({}, home=home)) as store:
            Registry(store).add(MODEL)
            Archive(store).preserve(MODEL, [gguf])
        timings: dict[str, list[float]] = {"archive": [], "plain": []}
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            for name, script, argv in (
                ("plain", PLAIN, [str(gguf)]),
                ("archive", ARCHIVE, [str(home), MODEL]),
            ):
                out = subprocess.run(
                    [sys.executable, "-c", script, *argv],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                timings[name].append(float(out.strip().splitlines()[-1]))
    archive, plain = (statistics.median(timings[k]) for k in ("archive", "plain"))
    print(f"### Cold start, time to first token (median of {args.runs} fresh processes)\n")
    print("| run | seconds |\n|---|---:|")
    print(f"| emeritus, from the archive (mmap of the content file) | {archive:.3f} |")
    print(f"| llama-cpp-python, plain path | {plain:.3f} |")
    print(f"\nratio archive / plain: {archive / plain:.2f} (target <= 1.10)")
    print(json.dumps({k: [round(v, 3) for v in vs] for k, vs in timings.items()}))
    return 0 if archive / plain <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
