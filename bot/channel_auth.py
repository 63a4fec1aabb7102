"""Bot Framework tokens on /api/messages, checked without ever blocking the event loop.

botframework-connector checks tokens itself, but it fetches the OpenID metadata and signing
keys with a synchronous ``requests.get`` without a timeout, on the event loop; it does not
remember a failed fetch, so every forged token tries again; and a token that does not decode
escapes as an exception that becomes a 500. Here the keys are fetched with httpx under one
total timeout, shared by every waiting request, cached for a day, and a failure is cached
with a backoff. The inbound half of botbuilder's authentication is replaced; the outbound
half (connector clients and their credentials) is still botbuilder's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    ClaimsIdentity,
)
from jwt.algorithms import RSAAlgorithm

from bot.delegating_auth import DelegatingAuthentication
from provisioning.settings import is_loopback_host

__all__ = [
    "BOT_FRAMEWORK_ISSUER",
    "ChannelTokenValidator",
    "KeysUnavailable",
    "SigningKeys",
    "TokenRefused",
    "VerifiedToken",
    "with_channel_tokens",
]

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER: Final = "https://api.botframework.com"
_ALGORITHMS: Final = ("RS256", "RS384", "RS512")
# A Bot Framework token is about 1.5 KB; a header far beyond that is not worth decoding.
_MAX_TOKEN_CHARS: Final = 16 * 1024
# Microsoft's metadata and key set are a few KB.
_MAX_DOCUMENT_BYTES: Final = 1024 * 1024
_VERIFIED_CACHE_SIZE: Final = 1024


class TokenRefused(Exception):
    """The request's token is not a valid Bot Framework token for this bot; say why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """No signing keys were ever loaded, so no token can be checked yet."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"the Bot Framework signing keys are not loaded; retry in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class _SigningKey:
    key: Any
    endorsements: frozenset[str]


@dataclass(frozen=True)
class VerifiedToken:
    claims: Mapping[str, Any]
    endorsements: frozenset[str]
    expires_at: float


class _FetchFailed(Exception):
    pass


class SigningKeys:
    """Bot Framework's signing keys, from its OpenID metadata, cached and fetched off the loop.

    One fetch at a time: every request that needs keys while a fetch runs waits for that
    fetch. Keys are kept for ``refresh_s``; a key id that is not among them causes at most
    one refetch per ``unknown_key_refresh_s`` (Microsoft rotates keys, forged tokens name
    made-up ones). A failed fetch is retried only after a backoff that doubles up to
    ``max_backoff_s``; until then the last good keys, however old, are used.
    """

    def __init__(
        self,
        metadata_url: str,
        *,
        timeout_s: float = 5.0,
        refresh_s: float = 24 * 3600,
        unknown_key_refresh_s: float = 3600,
        first_backoff_s: float = 30,
        max_backoff_s: float = 900,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._metadata_url = metadata_url
        self._timeout_s = timeout_s
        self._refresh_s = refresh_s
        self._unknown_key_refresh_s = unknown_key_refresh_s
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(3.0, timeout_s)),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )
        self._keys: dict[str, _SigningKey] | None = None
        self._loaded_at = -math.inf
        self._last_attempt = -math.inf
        self._retry_at = -math.inf
        self._failures = 0
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0

    async def get(self, kid: str) -> _SigningKey | None:
        """The key with this id; None if there is none. Raises KeysUnavailable."""
        if self._refresh_due(kid):
            await self._refresh()
        if self._keys is None:
            raise KeysUnavailable(max(1, math.ceil(self._retry_at - self._clock())))
        return self._keys.get(kid)

    def _refresh_due(self, kid: str) -> bool:
        now = self._clock()
        if self._keys is None or now - self._loaded_at >= self._refresh_s:
            return True
        return kid not in self._keys and now - self._last_attempt >= self._unknown_key_refresh_s

    async def warm(self) -> None:
        """Load the keys now, so the first activity does not wait for them."""
        if self._keys is None:
            await self._refresh()

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        await self._http.aclose()

    async def _refresh(self) -> None:
        if self._inflight is None:
            if self._clock() < self._retry_at:
                return
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(self._fetched)
        # Shielded: a client that goes away must not cancel the fetch the others wait for.
        await asyncio.shield(self._inflight)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._inflight = None

    async def _fetch(self) -> None:
        self.fetches += 1
        self._last_attempt = self._clock()
        host = urlsplit(self._metadata_url).hostname or self._metadata_url
        try:
            async with asyncio.timeout(self._timeout_s):
                keys = await self._load()
        except (TimeoutError, httpx.HTTPError, _FetchFailed) as exc:
            self._failures += 1
            delay = min(self._max_backoff_s, self._first_backoff_s * 2 ** (self._failures - 1))
            self._retry_at = self._clock() + delay
            held = "keeping the keys loaded earlier" if self._keys else "no keys loaded yet"
            log.warning(
                "could not load the Bot Framework signing keys from %s: %s; %s; next try in %d s",
                host,
                _describe(exc),
                held,
                delay,
            )
            return
        self._keys = keys
        self._loaded_at = self._clock()
        self._failures = 0
        self._retry_at = -math.inf
        log.info("loaded %d Bot Framework signing keys from %s", len(keys), host)

    async def _load(self) -> dict[str, _SigningKey]:
        metadata = await self._json(self._metadata_url)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchFailed("the OpenID metadata has no jwks_uri")
        _check_same_trust(self._metadata_url, jwks_uri)
        document = await self._json(jwks_uri)
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise _FetchFailed("the key set has no keys")
        keys: dict[str, _SigningKey] = {}
        for entry in entries:
            parsed = _parse_key(entry)
            if parsed is not None:
                keys[parsed[0]] = parsed[1]
        if not keys:
            raise _FetchFailed("the key set has no usable RSA key")
        return keys

    async def _json(self, url: str) -> dict[str, Any]:
        async with self._http.stream("GET", url, headers={"Accept": "application/json"}) as reply:
            if reply.status_code != 200:
                raise _FetchFailed(f"{urlsplit(url).path or '/'} answered {reply.status_code}")
            body = bytearray()
            async for chunk in reply.aiter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT_BYTES:
                    raise _FetchFailed(f"{urlsplit(url).path} is larger than 1 MiB")
        try:
            document = json.loads(body)
        except ValueError:
            raise _FetchFailed(f"{urlsplit(url).path} is not JSON") from None
        if not isinstance(document, dict):
            raise _FetchFailed(f"{urlsplit(url).path} is not a JSON object")
        return document


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


def _check_same_trust(metadata_url: str, jwks_uri: str) -> None:
    # The key set must come from a place as trustworthy as the metadata: https, or plain
    # http only on loopback (a local test server).
    parts = urlsplit(jwks_uri)
    if parts.scheme == "https" and parts.hostname:
        return
    if (
        parts.scheme == "http"
        and urlsplit(metadata_url).scheme == "http"
        and is_loopback_host(parts.hostname or "")
    ):
        return
    raise _FetchFailed("the OpenID metadata's jwks_uri is not an https URL")


def _parse_key(entry: object) -> tuple[str, _SigningKey] | None:
    if not isinstance(entry, dict) or entry.get("kty") != "RSA":
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    try:
        key = RSAAlgorithm.from_jwk(entry)
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        log.debug("skipping an unusable signing key %s", kid[:64])
        return None
    raw = entry.get("endorsements")
    endorsements = (
        frozenset(e for e in raw if isinstance(e, str)) if isinstance(raw, list) else frozenset()
    )
    return kid, _SigningKey(key, endorsements)


class ChannelTokenValidator:
    """Checks the token a Bot Connector sends with each activity, as Microsoft documents.

    https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication
    — issuer https://api.botframework.com, audience the bot's app id, a valid signature by a
    key from the OpenID metadata that is endorsed for the activity's channel, not expired (five
    minutes of clock skew allowed), and a ``serviceurl`` claim equal to the activity's.
    """

    def __init__(
        self,
        app_id: str,
        keys: SigningKeys,
        *,
        leeway_s: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app_id = app_id
        self._keys = keys
        self._leeway_s = leeway_s
        self._clock = clock
        # Connectors reuse one token for many activities: verifying its signature once is
        # enough. Only the signature and claims are cached; check_activity runs every time.
        self._verified: OrderedDict[str, VerifiedToken] = OrderedDict()

    @property
    def keys(self) -> SigningKeys:
        return self._keys

    async def verify(self, authorization: str | None) -> VerifiedToken:
        """The token's claims; raises TokenRefused, or KeysUnavailable when keys never loaded."""
        token = _bearer(authorization)
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at + self._leeway_s > self._clock():
            return cached
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.DecodeError:
            raise TokenRefused("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in _ALGORITHMS:
            raise TokenRefused(f"the token's signing algorithm {_short(alg)} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefused("the token names no signing key")
        # The issuer is checked before any key is looked up, so a token from anyone else
        # never costs a fetch.
        if unverified.get("iss") != BOT_FRAMEWORK_ISSUER:
            raise TokenRefused(
                f"the token was issued by {_short(unverified.get('iss'))}, not Bot Framework"
            )
        signing_key = await self._keys.get(kid)
        if signing_key is None:
            raise TokenRefused("the token is signed with a key Bot Framework does not publish")
        claims = _decode(token, signing_key, str(alg), self._app_id, self._leeway_s)
        verified = VerifiedToken(claims, signing_key.endorsements, float(claims["exp"]))
        self._verified[token] = verified
        if len(self._verified) > _VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    @staticmethod
    def check_activity(token: VerifiedToken, *, service_url: str, channel_id: str) -> None:
        """The token must have been issued for this activity's channel and service URL."""
        if token.endorsements and channel_id not in token.endorsements:
            raise TokenRefused(f"the signing key is not endorsed for channel {_short(channel_id)}")
        if token.claims.get("serviceurl") != service_url:
            raise TokenRefused(
                "the token's serviceurl claim does not match the activity's serviceUrl"
            )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise TokenRefused("the request has no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused("the Authorization header is not a Bearer token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenRefused("the token is too long")
    return token


def _decode(token: str, key: _SigningKey, alg: str, app_id: str, leeway_s: float) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=app_id,
            issuer=BOT_FRAMEWORK_ISSUER,
            leeway=leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("the token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused("the token was issued for another app") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("the token's signature does not match") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused(f"the token has no {exc.claim} claim") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRefused(f"the token is invalid ({type(exc).__name__})") from None
    return claims


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:80])


class _ChannelTokenAuthentication(DelegatingAuthentication):
    """botbuilder's authentication with PhoneDesk's inbound token check in front."""

    def __init__(
        self, inner: BotFrameworkAuthentication, validator: ChannelTokenValidator | None
    ) -> None:
        super().__init__(inner)
        self._validator = validator

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        if self._validator is None:
            # Anonymous mode checks no token; given one, botbuilder would try to fetch keys.
            return await super().authenticate_request(activity, "")
        try:
            token = await self._validator.verify(auth_header)
            self._validator.check_activity(
                token, service_url=activity.service_url or "", channel_id=activity.channel_id or ""
            )
        except (TokenRefused, KeysUnavailable) as exc:
            raise PermissionError(str(exc)) from None
        identity = ClaimsIdentity(dict(token.claims), True)
        result = AuthenticateRequestResult()
        result.claims_identity = identity
        result.audience = self.get_originating_audience()
        result.caller_id = None
        result.connector_factory = self.create_connector_factory(identity)
        return result

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        raise PermissionError("PhoneDesk does not accept streaming connections")

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        raise PermissionError("PhoneDesk is not a skill and takes no channel requests")


def with_channel_tokens(
    authentication: BotFrameworkAuthentication, validator: ChannelTokenValidator | None
) -> BotFrameworkAuthentication:
    """``authentication`` whose inbound check is ``validator`` (None: anonymous, no token)."""
    return _ChannelTokenAuthentication(authentication, validator)
