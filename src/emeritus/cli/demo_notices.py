"""The demo's notices stage: a webhook receiver and a mailbox on loopback subscribe; the
successor is itself deprecated, so the retired model's users hear of the chain, each with its
own figures; then who still calls the retired model (docs/design/notices.md)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from email.message import EmailMessage

    from emeritus.cli.demo import Demo

# http.server and email are imported where they are used: every command imports this module
# (the demo's stages are listed at import), and they cost a twentieth of a second.

OLD, NEW = "smollm2-135m-instruct", "gemma-3-270m"


@contextmanager
def webhook_receiver(secrets: list[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A receiver as the spec asks for one: it checks each signature, then keeps the body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from emeritus.notify import SIGNATURE_HEADER, verify

    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            header = self.headers.get(SIGNATURE_HEADER, "")
            good = any(verify(s, header, body, now=time.time()) for s in secrets)
            if good:
                got.append(json.loads(body))
            self.send_response(204 if good else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/notices", got
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def mailbox() -> Iterator[tuple[int, list[EmailMessage]]]:
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    messages: list[EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


def stage_notices(demo: Demo) -> None:
    from emeritus.notify import (
        DeliveryConfig,
        Sender,
        Subscribers,
        find_stragglers,
        notifying_registry,
    )
    from emeritus.store import utc_now

    store, secrets = demo.store, list[str]()
    with webhook_receiver(secrets) as (url, hooked), mailbox() as (port, mail):
        config = DeliveryConfig(hosts=("127.0.0.1",), smtp_host="127.0.0.1", smtp_port=port)
        _, secret = Subscribers(store, config).subscribe(webhook=url)
        secrets.append(secret or "")
        demo.say(f"the operator's webhook subscribed: {url} (its signing secret shown once)")
        now = utc_now()
        notifying_registry(store, config).deprecate(
            NEW, retire_at=now + timedelta(days=180), now=now, tentative=True
        )
        demo.say(f"{NEW}, the successor, is itself deprecated, on a tentative date")
        report = Sender(store, config).run()
        demo.say(f"outbox sent: {len(report.sent)} deliveries, {len(report.failed)} to retry")
        for body in hooked:
            demo.say(f"webhook (signature checked): {body['notice']['title']}")
        for message in mail:
            text = message.get_content()
            figures = [line for line in text.splitlines() if line.startswith("- requests in")]
            demo.say(f"mail to {message['To']}: {message['Subject']}; {'; '.join(figures)}")
    successor, found = find_stragglers(store, OLD)
    for s in found:
        demo.say(
            f"still calling {OLD}: {s.principal}, {s.requests} "
            f"request{'' if s.requests == 1 else 's'} in 30 days, "
            f"called {successor}: {'yes' if s.moved else 'not yet'}"
        )
