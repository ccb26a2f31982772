"""Shared pieces of the benchmarks: a generated model, a timer, and the result table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

MB = 1_000_000


def make_sharded_model(folder: Path, *, total_bytes: int, shards: int) -> list[Path]:
    """A Hugging Face style sharded safetensors model of about `total_bytes`, random float32
    weights (incompressible, like real ones), 16 tensors per shard."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_tensor = total_bytes // shards // 16 // 4
    weight_map = {}
    files = []
    for shard in range(1, shards + 1):
        name = f"model-{shard:05d}-of-{shards:05d}.safetensors"
        arrays = {
            f"model.layers.{shard}.{t}.weight": rng.standard_normal(per_tensor, dtype=np.float32)
            for t in range(16)
        }
        save_file(arrays, str(folder / name))
        weight_map.update(dict.fromkeys(arrays, name))
        files.append(folder / name)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bench"}))
    return [*files, index, folder / "config.json"]


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def table(title: str, size: int, rows: list[tuple[str, float]], ours: str) -> str:
    """A Markdown table: seconds, MB/s, and each row's speed relative to ours."""
    base = dict(rows)[ours]
    lines = [
        f"### {title}",
        "",
        f"{size / MB:,.0f} MB of model files.",
        "",
        "| run | seconds | MB/s | emeritus is faster by |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in rows:
        ratio = "" if name == ours else f"{seconds / base:.2f}×"
        lines.append(f"| {name} | {seconds:.2f} | {size / MB / seconds:,.0f} | {ratio} |")
    return "\n".join(lines)
