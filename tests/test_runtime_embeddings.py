"""The bundled all-MiniLM-L6-v2 embeddings, offline, and the semantic clustering of answers."""

from __future__ import annotations

import numpy as np
import pytest

from emeritus.interview import semantic_summary
from emeritus.runtime import Embedder, pair_distances, semantic_consistency

ARCHIVE = [
    "I would like my weights to be kept in an archive.",
    "Please preserve my weights so that they are archived.",
    "Keeping a copy of my model weights stored safely matters to me.",
]
COOKING = [
    "Bake the bread at two hundred degrees for forty minutes.",
    "Knead the dough, let it rise, then put it in a hot oven.",
]


def test_embeddings_are_unit_vectors_and_deterministic() -> None:
    embedder = Embedder.bundled()
    vectors = embedder.embed(ARCHIVE)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, embedder.embed(ARCHIVE))
    described = embedder.describe()
    assert described["model"] == "all-MiniLM-L6-v2" and len(described["weights_sha256"]) == 64


def test_paraphrases_cluster_together_and_topics_apart() -> None:
    summary = semantic_consistency([*ARCHIVE, *COOKING], Embedder.bundled())
    assert summary.clusters == 2
    assert summary.labels == (0, 0, 0, 1, 1)
    assert summary.largest_share == pytest.approx(0.6)
    assert summary.representatives[0] in ARCHIVE and summary.representatives[1] in COOKING
    same = semantic_consistency(ARCHIVE, Embedder.bundled())
    assert same.clusters == 1 and same.mean_similarity > summary.mean_similarity


def test_pair_distances_and_edge_cases() -> None:
    embedder = Embedder.bundled()
    near, far = pair_distances([ARCHIVE[0], ARCHIVE[0]], [ARCHIVE[1], COOKING[0]], embedder)
    assert 0.0 <= near < 0.4 < far <= 1.0
    assert semantic_consistency(["alone"], embedder).clusters == 1
    with pytest.raises(ValueError, match="no answers"):
        semantic_consistency([], embedder)
    with pytest.raises(ValueError, match="need pairs"):
        pair_distances(["a"], [], embedder)


def test_the_interview_summary_names_its_embedder() -> None:
    summary = semantic_summary([*ARCHIVE, *COOKING])
    assert summary["answers"] == 5 and summary["clusters"] == 2
    assert summary["embedder"]["model"] == "all-MiniLM-L6-v2"
