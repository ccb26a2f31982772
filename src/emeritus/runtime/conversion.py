"""A real safetensors model without a hub: the bundled SmolLM2-135M-Instruct GGUF converted into a
Hugging Face directory (bf16 safetensors, config, tokenizer and its chat template) by
transformers' own GGUF loader, once, into the user cache beside the llama.cpp wheel. `make`
converts it at setup (`converted_dir()`); `emeritus models add-bundled --format safetensors`,
the tests and `emeritus demo --format safetensors` preserve it and run it."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from emeritus.errors import EmeritusError
from emeritus.runtime.bundled import BUNDLED

SOURCE = "smollm2-135m-instruct"
CONVERTED = f"{SOURCE}-safetensors"  # the name the converted model is registered under


def cache_root() -> Path:
    """`$EMERITUS_CACHE`, else the user cache directory (where `make` keeps its wheels)."""
    import platformdirs

    given = os.environ.get("EMERITUS_CACHE")
    return Path(given) if given else platformdirs.user_cache_path("emeritus")


def converted_dir(cache: Path | None = None) -> Path:
    """The converted model's directory, converting it first if it is not in the cache. The
    name carries the GGUF's and transformers' identities: another of either converts anew."""
    import transformers

    [spec] = [b for b in BUNDLED if b.name == SOURCE]
    gguf = spec.locate(Path(tempfile.gettempdir()))
    key = hashlib.sha256(
        f"{gguf.name} {gguf.stat().st_size} transformers {transformers.__version__}".encode()
    ).hexdigest()[:12]
    final = (cache or cache_root()) / "models" / f"{CONVERTED}-{key}"
    if (final / "model.safetensors").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=final.parent))
    try:
        _convert(gguf, staging)
        try:
            staging.rename(final)  # whole or not at all; another process may have won
        except OSError:
            if not (final / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize with transformers' GGUF loader, drop the quantizer (save_pretrained refuses a
    GGUF-quantized model), cast to bf16, save model and tokenizer (with its chat template)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Offline by construction: the hub is never asked, even for a config file.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (ImportError, ValueError, OSError) as exc:
        raise EmeritusError(f"cannot convert {gguf.name} to safetensors: {exc}") from None
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
