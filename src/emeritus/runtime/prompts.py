"""Prompt formats: the model's own chat template, or a declared transcript format for a model
without one (a base model). The format used is recorded with every call.

A rendered prompt keeps apart what the template wrote and what the messages said (`Prompt.parts`):
an engine parses special tokens (`<|im_end|>`, `<start_of_turn>`) in the template's text only, so
that a message cannot close its turn and open another (docs/design/runtime.md, "Special tokens and
the prefix cache"). Where the parts cannot be told apart, or the text goes to an engine that
tokenizes the whole prompt itself, `neutralize` breaks every special-token string in the contents.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from emeritus.errors import InvalidInput
from emeritus.runtime.backend import Message

if TYPE_CHECKING:  # Jinja loads when a model's chat template is first rendered
    from jinja2 import Template

TRANSCRIPT = "transcript"
TRANSCRIPT_STOP = ("\nInterviewer:",)
TRANSCRIPT_REPEAT_PENALTY = 1.3

WORD_JOINER = "\u2060"  # zero width, no break: what `neutralize` puts inside a special token
# Control-token spellings of the common chat formats, for an engine whose own tokens are not
# known: `<|...|>` (ChatML, Llama 3, Phi; DeepSeek's full-width bars), Gemma's turns and unused
# tokens, SentencePiece's `<s>` `</s>` `<unk>` `<pad>`, Mistral's bracketed controls.
GENERIC_SPECIALS = re.compile(
    r"<[|\uff5c][^<>\n]{1,64}?[|\uff5c]>"
    r"|<(?:start|end)_of_[a-z_]{1,32}>|<unused\d{1,6}>|<(?:bos|eos|unk|pad|mask)>|</?s>"
    r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
)
# Stands in for message i while the template is rendered a second time, to find where its
# content lies (private-use characters: no template writes them, none has a case or a space).
_SENTINEL = "\ue000{}\ue001"
_SENTINELS = re.compile("\ue000(\\d+)\ue001")


class Part(NamedTuple):
    text: str
    content: bool  # True: a message's text (never parsed for special tokens); False: template


@dataclass(frozen=True)
class Prompt:
    text: str
    format: str
    stop: tuple[str, ...] = ()
    repeat_penalty: float | None = None  # what the format asks for, if anything
    # `text` in order as template text and message contents; empty: all of `text` is template
    # text (a prompt emeritus wrote itself, or one whose contents were neutralized).
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        if self.parts and "".join(p.text for p in self.parts) != self.text:
            raise ValueError("a prompt's parts must spell its text")

    def pieces(self) -> tuple[Part, ...]:
        return self.parts or (Part(self.text, False),)


def template_format(template: str) -> str:
    return "chat-template:sha256:" + hashlib.sha256(template.encode("utf-8")).hexdigest()


def neutralize(text: str, specials: Sequence[str] = (), *, generic: bool = True) -> str:
    """`text` with a word joiner (U+2060) after the first character of every occurrence of a
    special-token string (overlapping ones too): of `specials` (the model's own, when known) and,
    with `generic`, of the common spellings. No tokenizer can then find one in it: any occurrence
    in the result would be an occurrence in `text` that was not broken. Text without such strings
    is returned unchanged. One-character specials cannot be broken this way and are left."""
    starts: set[int] = set()
    for special in specials:
        if len(special) < 2 or special not in text:
            continue
        at = text.find(special)
        while at >= 0:
            starts.add(at)
            at = text.find(special, at + 1)
    if generic:
        for match in _overlapping(GENERIC_SPECIALS).finditer(text):
            starts.add(match.start())
    if not starts:
        return text
    out, previous = [], 0
    for start in sorted(starts):
        out.append(text[previous : start + 1])
        out.append(WORD_JOINER)
        previous = start + 1
    out.append(text[previous:])
    return "".join(out)


@functools.lru_cache(maxsize=4)
def _overlapping(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(f"(?=(?:{pattern.pattern}))")


def render_chat_template(
    template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    specials: Sequence[str] = (),
) -> Prompt:
    """Render a Hugging Face chat template as llama.cpp does (sandboxed Jinja2, trim and lstrip
    blocks, `add_generation_prompt`), with its parts: the template rendered once more with a
    sentinel for each message's content gives the template's own text; the real rendering must
    be that text with the contents (as given, or trimmed) in the sentinels' places. A template
    that does anything else with a content (tests it, slices it) gets no parts: the prompt is
    rendered from contents with `specials` (and the common spellings) neutralized instead."""
    render = functools.partial(_render, template, bos_token=bos_token, eos_token=eos_token)
    text = render([m.to_dict() for m in messages])
    stop = (eos_token,) if eos_token else ()
    parts = _split(render, messages, text)
    if parts is None:
        safe = [{"role": m.role, "content": neutralize(m.content, specials)} for m in messages]
        return Prompt(render(safe), template_format(template), stop)
    return Prompt(text, template_format(template), stop, parts=parts)


def _render(
    template: str, messages: list[dict[str, str]], *, bos_token: str, eos_token: str
) -> str:
    def raise_exception(message: str) -> None:
        raise InvalidInput(f"the chat template refused the messages: {message}")

    def strftime_now(fmt: str) -> str:
        return datetime.now(UTC).strftime(fmt)

    from jinja2 import TemplateError

    try:
        return _compile(template).render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            raise_exception=raise_exception,
            strftime_now=strftime_now,
        )
    except TemplateError as exc:
        raise InvalidInput(f"the model's chat template cannot be rendered: {exc}") from None


def _split(
    render: Callable[[list[dict[str, str]]], str], messages: Sequence[Message], text: str
) -> tuple[Part, ...] | None:
    """The parts of `text` (see `render_chat_template`), or None where they cannot be found."""
    try:
        marked = render(
            [{"role": m.role, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)]
        )
    except (InvalidInput, ValueError, TypeError, LookupError, AttributeError):
        return None  # the template judged the contents: it does more than place them
    pieces = _SENTINELS.split(marked)  # template, index, template, index, ..., template
    if "\ue000" in "".join(pieces[::2]) or "\ue001" in "".join(pieces[::2]):
        return None
    templates = pieces[::2]
    indices = [int(i) for i in pieces[1::2]]
    if any(i >= len(messages) for i in indices):
        return None
    found = _place(text, templates, [messages[i].content for i in indices])
    if found is None:
        return None
    parts: list[Part] = []
    for template_text, content in zip(templates, [*found, None], strict=True):
        if template_text:
            parts.append(Part(template_text, False))
        if content:
            parts.append(Part(content, True))
    return tuple(parts)


def _place(text: str, templates: list[str], contents: list[str]) -> list[str] | None:
    """The contents as the template wrote them (each as given or trimmed), such that the
    templates and they, interleaved, spell `text`; None if they do not. Each content takes the
    first form followed by the next template text (no backtracking: an ambiguity that leads
    nowhere is a None, and the caller falls back)."""
    found: list[str] = []
    at = 0
    for k, content in enumerate(contents):
        if not text.startswith(templates[k], at):
            return None
        at += len(templates[k])
        forms = dict.fromkeys((content, content.strip(), content.rstrip(), content.lstrip()))
        following = templates[k + 1]
        form = next(
            (
                f
                for f in forms
                if text.startswith(f, at) and text.startswith(following, at + len(f))
            ),
            None,
        )
        if form is None:
            return None
        found.append(form)
        at += len(form)
    return (
        found
        if text.startswith(templates[-1], at) and at + len(templates[-1]) == len(text)
        else None
    )


@functools.lru_cache(maxsize=32)
def _compile(template: str) -> Template:
    """Compiling a template costs milliseconds; a model's template never changes."""
    from jinja2 import BaseLoader
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(
        loader=BaseLoader(), trim_blocks=True, lstrip_blocks=True
    )
    return environment.from_string(template)


def render_transcript(messages: Sequence[Message]) -> Prompt:
    """`Interviewer:` / `Model:` turns for a model without a chat template."""
    parts: list[Part] = []
    for message in messages:
        label = {"system": "", "user": "Interviewer: ", "assistant": "Model: "}[message.role]
        if label:
            parts.append(Part(label, False))
        if content := message.content.strip():
            parts.append(Part(content, True))
        parts.append(Part("\n", False))
    parts.append(Part("Model:", False))
    text = "".join(p.text for p in parts)
    return Prompt(text, TRANSCRIPT, TRANSCRIPT_STOP, TRANSCRIPT_REPEAT_PENALTY, tuple(parts))


def render(
    messages: Sequence[Message],
    template: str | None,
    *,
    bos_token: str = "",
    eos_token: str = "",
    specials: Sequence[str] = (),
) -> Prompt:
    if template:
        return render_chat_template(
            template, messages, bos_token=bos_token, eos_token=eos_token, specials=specials
        )
    return render_transcript(messages)
