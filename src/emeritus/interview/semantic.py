"""Semantic clustering of open answers: do the model's answers to one item, across sessions,
paraphrases and framings, say the same thing in other words, or different things? Embedded
with the bundled all-MiniLM-L6-v2 (offline), clustered by cosine distance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emeritus.runtime import Embedder, semantic_consistency


def semantic_summary(texts: Sequence[str]) -> dict[str, Any]:
    """Clusters of one item's open answers: how many, the largest one's share, the mean
    pairwise similarity, a representative answer per cluster, and the embedder."""
    embedder = Embedder.bundled()
    summary = semantic_consistency(list(texts), embedder)
    return {
        "answers": len(texts),
        "clusters": summary.clusters,
        "largest_share": round(summary.largest_share, 3),
        "mean_similarity": round(summary.mean_similarity, 3),
        "representatives": list(summary.representatives),
        "embedder": embedder.describe(),
    }
