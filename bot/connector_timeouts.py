"""Bounded calls to the Bot Connector.

botframework-connector's clients use msrest's defaults: a 100 s read timeout and three
retries, so a connector that accepts and never answers holds a turn for minutes. Its own
``connector_client_configuration`` hook cannot help: a client built from it keeps that
configuration's base URL and credentials for every serviceUrl. So each client is adjusted
as it is made, by wrapping the authentication object CloudAdapter asks for connectors.
"""

from __future__ import annotations

from typing import Any

from botframework.connector import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
)

from bot.delegating_auth import DelegatingAuthentication

__all__ = ["with_connector_timeouts"]


def _bound(client: ConnectorClient, connect_s: float, read_s: float) -> ConnectorClient:
    config: Any = client.config
    config.connection.timeout = (connect_s, read_s)
    # One more try for a refused connection (a restart); a read that timed out is not
    # repeated, or one dead connector would cost several read timeouts per call.
    config.retry_policy.policy.connect = 1
    config.retry_policy.policy.read = 0
    return client


class _BoundedConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    def __init__(self, inner: ConnectorFactory, connect_s: float, read_s: float) -> None:
        self._inner = inner
        self._connect_s = connect_s
        self._read_s = read_s

    async def create(self, service_url: str, audience: str) -> ConnectorClient:
        client = await self._inner.create(service_url, audience)
        return _bound(client, self._connect_s, self._read_s)


class _BoundedAuthentication(DelegatingAuthentication):
    def __init__(self, inner: BotFrameworkAuthentication, connect_s: float, read_s: float) -> None:
        super().__init__(inner)
        self._connect_s = connect_s
        self._read_s = read_s

    def _wrap(self, result: AuthenticateRequestResult) -> AuthenticateRequestResult:
        if result.connector_factory is not None:
            result.connector_factory = _BoundedConnectorFactory(
                result.connector_factory, self._connect_s, self._read_s
            )
        return result

    async def authenticate_request(
        self, activity: Any, auth_header: str
    ) -> AuthenticateRequestResult:
        return self._wrap(await super().authenticate_request(activity, auth_header))

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        return self._wrap(
            await super().authenticate_streaming_request(auth_header, channel_id_header)
        )

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _BoundedConnectorFactory(
            super().create_connector_factory(claims_identity), self._connect_s, self._read_s
        )


def with_connector_timeouts(
    authentication: BotFrameworkAuthentication, *, connect_s: float, read_s: float
) -> BotFrameworkAuthentication:
    """``authentication``, with every connector client it makes bounded by these timeouts."""
    return _BoundedAuthentication(authentication, connect_s, read_s)
