"""Real receivers on loopback for the notice tests: a webhook endpoint that checks signatures
with the snippet from docs/design/notices.md (not with emeritus's own code), and a mailbox that
is a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parents[1] / "docs" / "design" / "notices.md"


def receiver_verify() -> Any:
    """The `verify` function a receiver would copy from the spec, executed as written there."""
    text = SPEC.read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", text, re.S)
    assert snippet, "docs/design/notices.md lost its verification snippet"
    scope: dict[str, Any] = {}
    exec(snippet.group(1), scope)
    return scope["verify"]


@dataclass
class Webhook:
    """An endpoint that fails the first `failures` requests (status 500), or always when
    `failures` is -1; it acts once per idempotency key, and only on a good signature."""

    secrets: list[str] = field(default_factory=list)  # the subscribers' secrets it was given
    failures: int = 0
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    acted: dict[str, bytes] = field(default_factory=dict)
    refused_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, headers: Any, body: bytes) -> int:
        verify = receiver_verify()
        key = headers.get("Idempotency-Key", "")
        with self.lock:
            self.received.append({"key": key, "headers": dict(headers), "body": body})
            count = len(self.received)
        signature = headers.get("Emeritus-Signature", "")
        if not any(verify(secret, signature, body) for secret in self.secrets):
            with self.lock:
                self.refused_signatures += 1
            return 401
        if self.failures == -1 or count <= self.failures:
            return 500
        with self.lock:
            self.acted.setdefault(key, body)  # acts on a repeat only once
        if self.delay:
            time.sleep(self.delay)
        return 200


def serve_webhook(hook: Webhook) -> Iterator[Webhook]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = hook.handle(self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_port}/hooks/notices"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def serve_mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                message_from_bytes(envelope.original_content, policy=policy.default)
            )
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: no port 0
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
