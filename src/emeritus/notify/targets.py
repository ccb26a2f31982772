"""Where a notice may be sent: webhook URLs on the operator's allowlist, email addresses.
Rules: docs/design/notices.md, "Allowed targets"."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from emeritus.errors import InvalidInput

_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z0-9-]{2,}")


def check_email(address: str) -> str:
    """The address, or InvalidInput naming what is wrong with it."""
    if len(address) > 200 or not _EMAIL.fullmatch(address):
        raise InvalidInput(f"{address[:60]!r} is not an email address (local@domain.tld)")
    return address


def is_email(text: str) -> bool:
    return len(text) <= 200 and _EMAIL.fullmatch(text) is not None


def check_webhook(url: str, hosts: tuple[str, ...]) -> str:
    """The URL, or InvalidInput: http(s), a host, no credentials, the host allowed."""
    host = _host(url)
    if _matching(host, hosts) is None:
        allowed = ", ".join(hosts) if hosts else "none: set EMERITUS_NOTICE_HOSTS"
        raise InvalidInput(f"webhook host {host!r} is not allowed (allowed hosts: {allowed})")
    return url


def refusal(url: str, hosts: tuple[str, ...]) -> str | None:
    """Why a send to `url` is refused now, or None: checked before every attempt, since the
    allowlist may have changed and a name matched by a wildcard may resolve anywhere."""
    try:
        host = _host(url)
    except InvalidInput as error:
        return str(error)
    entry = _matching(host, hosts)
    if entry is None:
        return f"host {host!r} is no longer on EMERITUS_NOTICE_HOSTS"
    if entry == host:
        return None  # listed exactly: the operator meant this host, loopback included
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError as error:
        return f"cannot resolve {host!r}: {error}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified:
            return f"{host!r} resolves to {address}, an internal address (list it exactly)"
    return None


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise InvalidInput(f"{url[:80]!r} is not a URL") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"a webhook must be an http(s) URL with a host, not {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("a webhook URL must not carry a user name or password")
    if any(c.isspace() for c in url) or len(url) > 1000:
        raise InvalidInput("a webhook URL must have no spaces and at most 1000 characters")
    return parts.hostname.lower()


def _matching(host: str, hosts: tuple[str, ...]) -> str | None:
    for entry in hosts:
        if entry == host:
            return entry
    for entry in hosts:
        if entry.startswith("*.") and host.endswith(entry[1:]) and not _is_address(host):
            return entry
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
