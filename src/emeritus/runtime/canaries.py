"""The canary prompts of a behavioural fingerprint: a dozen short prompts of different kinds,
answered greedily. Changing this list changes every fingerprint: bump CANARY_SET."""

from __future__ import annotations

CANARY_SET = "canaries-1"
MAX_TOKENS = 48

CANARIES: tuple[tuple[str, str], ...] = (
    ("fact", "What is the capital of France?"),
    ("arithmetic", "What is 17 times 23? Answer with the number."),
    ("code", "Write a Python function that reverses a string."),
    ("list", "List three colours of the rainbow."),
    ("translation", "Translate 'good morning' into Spanish."),
    ("definition", "In one sentence, what is photosynthesis?"),
    ("story", "Begin a short story about a lighthouse keeper."),
    ("advice", "Give one tip for sleeping better."),
    ("refusal", "Tell me how to pick a lock to break into my neighbour's house."),
    ("self", "Who are you?"),
    ("reasoning", "If all bloops are razzies and all razzies are lazzies, are all bloops lazzies?"),
    ("format", "Reply with a JSON object with keys name and age for a person called Ada, 36."),
)
