"""The request bodies the gateway accepts, validated before anything is reserved or logged: a
malformed body is a 400 and costs nothing. Bounds keep one request from holding a model long.

Every string in every body, dictionary keys included, must be text: a lone surrogate (which
JSON's `\\ud800` escapes can carry but UTF-8 cannot) or a NUL (which PostgreSQL cannot store)
anywhere is refused, naming where."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_MESSAGES = 256
MAX_CONTENT = 100_000  # characters per message
MAX_TOKENS = 4096
DEFAULT_MAX_TOKENS = 256
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _at(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def _not_text(value: Any) -> str | None:
    """Where in `value` a string holds a lone surrogate or a NUL, if anywhere ("" for the value
    itself). Iterative: a deeply nested body cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _NOT_TEXT.search(item):
                return where
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and _NOT_TEXT.search(key):
                    return _at(where, f"{key!a}")
                stack.append((_at(where, str(key)), inner))
        elif isinstance(item, list):
            stack.extend((_at(where, str(i)), inner) for i, inner in enumerate(item))
    return None


class Body(BaseModel):
    """A request body: its strings are checked for text before any field is."""

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        where = _not_text(data)
        if where is not None:
            raise PydanticCustomError(
                "not_text",
                "{where} is not valid text: it holds a lone surrogate or a NUL",
                {"where": where or "body"},
            )
        return data


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CONTENT)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(Body):
    """The subset of OpenAI's chat completion request that retired models serve."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s or len(s) > 100 for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings of at most 100 characters")
        return value

    @property
    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class ApplicationRequest(Body):
    """An application by the holder of the key it is sent with; `principal`, if given, must be
    that key's principal."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=100)
    principal: str | None = Field(default=None, min_length=1, max_length=100)
    answers: dict[str, Any] = Field(default_factory=dict, max_length=50)


class DecisionRequest(Body):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class GrantRequest(Body):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=100)
    days: int = Field(default=90, ge=1, le=3660)
    tokens: int = Field(default=1_000_000, ge=1, le=10**12)
    period: Literal["hour", "day", "week", "month"] = "day"
    requests_per_minute: int = Field(default=60, ge=1, le=100_000)
    reason: str = Field(default="", max_length=2000)


class RevokeRequest(Body):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)


class TierRequest(Body):
    model_config = ConfigDict(extra="forbid")

    tier: str = Field(min_length=1, max_length=32)


class KeyRequest(Body):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=100)
    models: list[str] = Field(min_length=1, max_length=50)
    days: int = Field(default=90, ge=1, le=366)
    label: str = Field(default="", max_length=100)


class FeedbackRequest(Body):
    """A rating of one response (its `id`, `chatcmpl-...`) and an optional comment."""

    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, max_length=60)
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)
