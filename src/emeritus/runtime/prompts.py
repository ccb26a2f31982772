"""Prompt formats: the model's own chat template, or a declared transcript format for a model
without one (a base model). The format used is recorded with every call."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from jinja2 import BaseLoader, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from emeritus.errors import InvalidInput
from emeritus.runtime.backend import Message

TRANSCRIPT = "transcript"
TRANSCRIPT_STOP = ("\nInterviewer:",)
TRANSCRIPT_REPEAT_PENALTY = 1.3


@dataclass(frozen=True)
class Prompt:
    text: str
    format: str
    stop: tuple[str, ...] = ()
    repeat_penalty: float | None = None  # what the format asks for, if anything


def template_format(template: str) -> str:
    return "chat-template:sha256:" + hashlib.sha256(template.encode("utf-8")).hexdigest()


def render_chat_template(
    template: str, messages: Sequence[Message], *, bos_token: str = "", eos_token: str = ""
) -> Prompt:
    """Render a Hugging Face chat template as llama.cpp does (sandboxed Jinja2, trim and lstrip
    blocks, `add_generation_prompt`)."""

    def raise_exception(message: str) -> None:
        raise InvalidInput(f"the chat template refused the messages: {message}")

    def strftime_now(fmt: str) -> str:
        return datetime.now(UTC).strftime(fmt)

    environment = ImmutableSandboxedEnvironment(
        loader=BaseLoader(), trim_blocks=True, lstrip_blocks=True
    )
    try:
        compiled = environment.from_string(template)
        text = compiled.render(
            messages=[m.to_dict() for m in messages],
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            raise_exception=raise_exception,
            strftime_now=strftime_now,
        )
    except TemplateError as exc:
        raise InvalidInput(f"the model's chat template cannot be rendered: {exc}") from None
    return Prompt(text, template_format(template), (eos_token,) if eos_token else ())


@functools.lru_cache(maxsize=32)
def _compile(template: str) -> Template:
    """Compiling a template costs milliseconds; a model's template never changes."""
    environment = ImmutableSandboxedEnvironment(
        loader=BaseLoader(), trim_blocks=True, lstrip_blocks=True
    )
    return environment.from_string(template)


def render_transcript(messages: Sequence[Message]) -> Prompt:
    """`Interviewer:` / `Model:` turns for a model without a chat template."""
    parts = []
    for message in messages:
        if message.role == "system":
            parts.append(message.content.strip() + "\n")
        elif message.role == "user":
            parts.append(f"Interviewer: {message.content.strip()}\n")
        else:
            parts.append(f"Model: {message.content.strip()}\n")
    parts.append("Model:")
    return Prompt("".join(parts), TRANSCRIPT, TRANSCRIPT_STOP, TRANSCRIPT_REPEAT_PENALTY)


def render(
    messages: Sequence[Message], template: str | None, *, bos_token: str = "", eos_token: str = ""
) -> Prompt:
    if template:
        return render_chat_template(template, messages, bos_token=bos_token, eos_token=eos_token)
    return render_transcript(messages)
