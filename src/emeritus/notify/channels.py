"""Sending one delivery: a signed webhook POST or an email through SMTP. Each returns an
`Outcome`; nothing here raises for a receiver's failure (docs/design/notices.md)."""

from __future__ import annotations

import json
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from emeritus.notify.config import DeliveryConfig
from emeritus.notify.signing import SIGNATURE_HEADER, sign

REPLY_LIMIT = 4096  # bytes of a failing receiver's reply kept as the attempt's error


@dataclass(frozen=True)
class Outcome:
    outcome: str  # ok | failed | refused
    status: int | None = None
    error: str | None = None


def send_webhook(
    url: str, secret: str, body: bytes, *, delivery: str, key: str, config: DeliveryConfig
) -> Outcome:
    import httpx

    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "emeritus-notices/1",
        "Emeritus-Delivery": delivery,
        "Idempotency-Key": key,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        with (
            httpx.Client(timeout=config.timeout, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            if 200 <= response.status_code < 300:
                return Outcome("ok", response.status_code)
            reply = b""
            for chunk in response.iter_bytes():
                reply += chunk
                if len(reply) >= REPLY_LIMIT:
                    break
            text = reply[:REPLY_LIMIT].decode("utf-8", "replace").strip()
            return Outcome("failed", response.status_code, f"HTTP {response.status_code} {text}")
    except httpx.HTTPError as error:
        return Outcome("failed", None, f"{type(error).__name__}: {error}"[:500])


def send_email(address: str, body: dict[str, Any], *, key: str, config: DeliveryConfig) -> Outcome:
    if not config.smtp_host:
        return Outcome("failed", None, "no SMTP server configured (EMERITUS_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = address
    message["Subject"] = body["notice"]["title"]
    message["Date"] = formatdate(usegmt=True)
    # The same id on every retry, so a mail system (or a person) can tell a repeat.
    # (40 hex digits: a longer id would be folded onto a second header line).
    message["Message-ID"] = f"<{key[:40]}@emeritus>"
    message["Idempotency-Key"] = key
    message.set_content(email_text(body))
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
            if config.smtp_starttls:
                smtp.starttls()
            if config.smtp_user and config.smtp_password:
                smtp.login(config.smtp_user, config.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as error:
        reply = (
            error.smtp_error.decode("utf-8", "replace")
            if isinstance(error.smtp_error, bytes)
            else str(error.smtp_error)
        )
        return Outcome("failed", error.smtp_code, f"SMTP {error.smtp_code} {reply}"[:500])
    except (smtplib.SMTPException, OSError) as error:
        return Outcome("failed", None, f"{type(error).__name__}: {error}"[:500])
    return Outcome("ok", 250)


def email_text(body: dict[str, Any]) -> str:
    """The notice's Markdown, then the recipient's own figures."""
    text = str(body["notice"]["body"]).rstrip() + "\n"
    usage = body["recipient"].get("usage")
    if usage:
        text += (
            "\n## Your use of this model\n\n"
            f"- requests in the last 7 days: {usage['requests_7d']}\n"
            f"- requests in the last 30 days: {usage['requests_30d']}\n"
            f"- tokens in the last 30 days: {usage['tokens_30d']}\n"
            f"- last call: {usage['last_call'] or 'none recorded'}\n"
        )
    return text + f"\nNotice: {body['notice']['link']}\n"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
