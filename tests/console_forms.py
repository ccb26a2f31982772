"""Sending the console's forms from httpx as a browser does: a form sent before any session
(sign-in, sign-up, invitation) carries the pre-session token its page was served with."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def form_token(client: httpx.Client, path: str) -> str:
    """The hidden `csrf` field of the form at `path` (the client keeps the cookie)."""
    shown = client.get(path)
    found = _CSRF.search(shown.text)
    assert shown.status_code == 200 and found, f"{path}: no form token"
    return found.group(1)


def send_form(client: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    """Fetch the form at `path`, then send `data` to it with its token."""
    return client.post(path, data={**data, "csrf": form_token(client, path)})


def sign_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """Sign in through the form; `client.base_url` is the console's (…/console)."""
    return send_form(client, "/sign-in", {"name": name, "password": password})
