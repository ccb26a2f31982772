"""Notice delivery's settings, read from the environment (docs/design/notices.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from emeritus.errors import InvalidInput


@dataclass(frozen=True)
class DeliveryConfig:
    """- `hosts` (`EMERITUS_NOTICE_HOSTS`): the webhook hosts the operator allows;
    - `timeout` (`EMERITUS_NOTICE_TIMEOUT`): seconds one attempt may take, default 10;
    - `max_tries` (`EMERITUS_NOTICE_MAX_TRIES`): attempts before the dead letter, default 6;
    - `recent_days` (`EMERITUS_NOTICE_RECENT_DAYS`): a principal whose keys called the model
      within this many days is told, default 30;
    - SMTP: `EMERITUS_SMTP_HOST`, `EMERITUS_SMTP_PORT` (25), `EMERITUS_SMTP_STARTTLS` (`1`),
      `EMERITUS_SMTP_USER`, `EMERITUS_SMTP_PASSWORD`, `EMERITUS_SMTP_FROM`."""

    hosts: tuple[str, ...] = ()
    timeout: float = 10.0
    max_tries: int = 6
    recent_days: int = 30
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "emeritus@localhost"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliveryConfig:
        env = os.environ if env is None else env
        hosts = tuple(
            h.strip().lower() for h in env.get("EMERITUS_NOTICE_HOSTS", "").split(",") if h.strip()
        )
        return cls(
            hosts=hosts,
            timeout=_number(env, "EMERITUS_NOTICE_TIMEOUT", 10.0, 0.1, 300),
            max_tries=int(_number(env, "EMERITUS_NOTICE_MAX_TRIES", 6, 1, 100, whole=True)),
            recent_days=int(_number(env, "EMERITUS_NOTICE_RECENT_DAYS", 30, 1, 3650, whole=True)),
            smtp_host=env.get("EMERITUS_SMTP_HOST", ""),
            smtp_port=int(_number(env, "EMERITUS_SMTP_PORT", 25, 1, 65535, whole=True)),
            smtp_starttls=env.get("EMERITUS_SMTP_STARTTLS", "") in ("1", "true", "yes"),
            smtp_user=env.get("EMERITUS_SMTP_USER", ""),
            smtp_password=env.get("EMERITUS_SMTP_PASSWORD", ""),
            smtp_from=env.get("EMERITUS_SMTP_FROM") or "emeritus@localhost",
        )


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    whole: bool = False,
) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise InvalidInput(f"{name} must be {kind}, not {text!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}, not {text}")
    return value
