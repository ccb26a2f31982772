"""How emeritus hands out a managed llama-server's slots (docs/design/engines.md, "Prefix reuse
never crosses principals"): a principal's request goes to the free slot of its own that holds
the longest shared prefix, and never reuses what another principal left in a slot."""

from __future__ import annotations

from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.engine_backends import SlotAffinity, prompt_key

ESSAY = "Write a long essay about the sea."
BREAD = "Explain step by step how to bake bread."
CATS = "Describe a cat in great detail."


def _key(*turns: str) -> str:
    roles = ("user", "assistant")
    messages = tuple(Message(roles[i % 2], text) for i, text in enumerate(turns))
    return prompt_key(ChatRequest(messages, Params()))


def test_a_principal_finds_each_of_its_prompts_in_the_slot_that_holds_it() -> None:
    slots = SlotAffinity(3)
    held = {text: slots.take("alice", _key(text)) for text in (ESSAY, BREAD, CATS)}
    for slot, _ in held.values():
        slots.give(slot)
    for text in (BREAD, CATS, ESSAY, BREAD):
        slot, reuse = slots.take("alice", _key(text))
        assert (slot, reuse) == (held[text][0], True), text
        slots.give(slot)
    # A conversation that goes on finds the slot that holds its beginning.
    slot, reuse = slots.take("alice", _key(CATS, "A cat is a small animal.", "Go on."))
    assert (slot, reuse) == (held[CATS][0], True)
    slots.give(slot)


def test_another_principal_gets_no_reuse_however_alike_its_prompt() -> None:
    slots = SlotAffinity(2)
    first, _ = slots.take("alice", _key(ESSAY))
    slots.give(first)
    slot, reuse = slots.take("bob", _key(ESSAY))
    assert slot != first and not reuse  # the idle slot, evaluated from nothing
    again, reuse = slots.take("carol", _key(ESSAY))  # alice's slot is the only one free
    assert again == first and not reuse
    slots.give(slot)
    slots.give(again)
    slot, reuse = slots.take("alice", _key(ESSAY))
    assert not reuse  # carol used it last: alice owns no slot now
    slots.give(slot)
    slot, reuse = slots.take(None, _key(ESSAY))
    assert not reuse  # no scope: never
