"""Response headers that keep the console and the published essays from being used against
their readers: no content sniffing (an essay's `.txt` stays text), no framing (clickjacking of
the console's forms), no referrer leaking a page's address, and on pages a content security
policy that runs no script at all: the console needs none, and text a model wrote or an
applicant typed can never become one, whatever an escaping bug would let through."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALWAYS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
}
PAGE_POLICY = (
    b"default-src 'none'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The chat page loads one script of ours, which streams answers with fetch (docs/design/chat.md);
# it still runs no inline script, and the model's text goes in with textContent.
CHAT_POLICY = PAGE_POLICY.replace(b"script-src 'none'", b"script-src 'self'; connect-src 'self'")
# FastAPI's interactive docs load their scripts; they get the headers above, not the policy.
UNPOLICED = ("/docs", "/redoc")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policed = not str(scope.get("path", "")).startswith(UNPOLICED)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in ALWAYS.items() if k not in present]
                if policed and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", PAGE_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
