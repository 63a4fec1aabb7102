"""Guards on /api/messages that run before any activity reaches botbuilder, in both modes.

Without a MicrosoftAppId nothing authenticates a caller, so the bot must stay reachable only
from this machine: a web page open in a browser can POST to localhost with a "simple"
content type and no CORS preflight, and a DNS-rebound name can point at 127.0.0.1. The
Agents Playground and the tests are server-to-server callers on loopback; they send neither
``Origin`` nor ``Sec-Fetch-*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from email.message import Message
from urllib.parse import urlsplit

from provisioning.settings import is_loopback_host

__all__ = [
    "EdgeRefusal",
    "check_browser_request",
    "check_content_type",
    "check_host",
    "check_service_url",
    "host_allowed",
]


class EdgeRefusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _host_of_authority(authority: str) -> str | None:
    try:
        parts = urlsplit(f"//{authority}")
        host = parts.hostname
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return None
    return host


def check_content_type(value: str | None) -> None:
    """Only ``application/json`` (with an optional charset): anything else is not an activity.

    A substring test would let ``text/plain; x=application/json`` through, which a browser
    sends cross-site without a preflight.
    """
    if not value:
        raise EdgeRefusal(415, "activities must be sent as application/json")
    if value.split(";", 1)[0].strip().lower() != "application/json":
        raise EdgeRefusal(415, "activities must be sent as application/json")
    message = Message()
    message["Content-Type"] = value
    for key, param in message.get_params(header="content-type", failobj=[])[1:]:
        if key.lower() != "charset":
            raise EdgeRefusal(415, f"unexpected Content-Type parameter {key[:40]!r}")
        if param.strip().lower() not in ("utf-8", "utf8"):
            raise EdgeRefusal(415, "activities must be UTF-8 encoded JSON")


def check_host(value: str | None) -> None:
    """Anonymous mode: refuse a Host that is not loopback (DNS rebinding)."""
    host = _host_of_authority(value or "")
    if not host or not is_loopback_host(host):
        raise EdgeRefusal(
            421,
            "without a MicrosoftAppId the bot answers only requests addressed to localhost",
        )


def check_browser_request(headers: Mapping[str, str]) -> None:
    """Anonymous mode: refuse what a web page in a browser could have sent cross-site."""
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        host = _host_of_authority(parts.netloc) if parts.scheme in ("http", "https") else None
        if not host or not is_loopback_host(host):
            raise EdgeRefusal(403, "cross-site requests to the bot are refused")
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        raise EdgeRefusal(403, "cross-site requests to the bot are refused")


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    host = host.rstrip(".").lower()
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def check_service_url(value: str, *, anonymous: bool, allowed_hosts: Iterable[str]) -> None:
    """The bot POSTs replies to ``serviceUrl``; it must be somewhere it may talk to.

    Anonymous: loopback only, so an unauthenticated caller cannot make the bot send requests
    elsewhere. Authenticated: https to an allow-listed Bot Connector host.
    """
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise EdgeRefusal(400, "`serviceUrl` is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise EdgeRefusal(400, "`serviceUrl` must be an http(s) URL")
    if anonymous:
        if not is_loopback_host(host):
            raise EdgeRefusal(
                400,
                "`serviceUrl` must be a loopback URL without a MicrosoftAppId "
                "(the bot is a local tool in that mode)",
            )
        return
    if parts.scheme != "https":
        raise EdgeRefusal(400, "`serviceUrl` must be https")
    if not host_allowed(host, allowed_hosts):
        raise EdgeRefusal(400, f"`serviceUrl` host {host[:80]!r} is not an allowed Bot Connector")
