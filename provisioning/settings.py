"""PhoneDesk's settings, read once from the environment (and an optional `.env`).

`Settings` is built in `main()` and passed into every factory; nothing else reads
`os.environ`. A bad or missing value stops start-up with a message that names the
environment variable, so nothing silently becomes "".
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from provisioning.persistence.store import default_database_url
from provisioning.simulator.config import SimulatorConfig

AUTO_ATTENDANT_APP_ID = "ce933385-9390-45d1-9512-c8d228074e07"
CALL_QUEUE_APP_ID = "11cd3e2e-fccb-42ad-ad00-878b93575e07"

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
TEAMS_ADMIN_BASE_URL = "https://api.interfaces.records.teams.microsoft.com"
AUTHORITY_HOST = "https://login.microsoftonline.com"
BOT_OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"

# The embedded simulator runs fast enough for a demo: 17.5 minutes of propagation take ~5 s.
DEMO_TIME_SCALE = 0.005

ENV_PREFIX = "PHONEDESK_"


class EmbeddedSimulatorConfig(SimulatorConfig):
    """The simulator as `make run` starts it: at demo speed unless told otherwise.

    A subclass rather than a default_factory, because setting any one
    PHONEDESK_SIMULATOR__* variable replaces a factory's value as a whole.
    """

    time_scale: float = Field(DEMO_TIME_SCALE, gt=0)


class ConfigError(Exception):
    """A setting is missing, malformed or contradicts another one."""


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # --- where the bot listens and keeps its data
    host: str = "127.0.0.1"
    port: int = Field(3978, ge=1, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; defaults to a SQLite file in the data directory."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- the bot's own identity (Azure Bot resource); Bot Framework names accepted as aliases
    app_id: str = Field(
        "", validation_alias=AliasChoices("MicrosoftAppId", "PHONEDESK_APP_ID", "app_id")
    )
    app_password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(
            "MicrosoftAppPassword", "PHONEDESK_APP_PASSWORD", "app_password"
        ),
    )
    app_tenant_id: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "MicrosoftAppTenantId", "PHONEDESK_APP_TENANT_ID", "app_tenant_id"
        ),
    )
    app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        "MultiTenant",
        validation_alias=AliasChoices("MicrosoftAppType", "PHONEDESK_APP_TYPE", "app_type"),
    )

    # --- the Microsoft 365 tenant PhoneDesk provisions in (unset: the built-in simulator)
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_certificate_path: Path | None = None
    client_certificate_thumbprint: str | None = None
    graph_base_url: str = GRAPH_BASE_URL
    teams_admin_base_url: str = TEAMS_ADMIN_BASE_URL
    authority_host: str = AUTHORITY_HOST
    http_timeout_s: float = Field(30.0, gt=0)

    # --- where the bot may send replies, and how long it waits for the Bot Connector
    service_url_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "smba.trafficmanager.net",
            "*.botframework.com",
            "smba.infra.gcc.teams.microsoft.com",
            "smba.infra.gov.teams.microsoft.us",
            "smba.infra.dod.teams.microsoft.us",
        ],
        description="Bot Connector hosts an activity's serviceUrl may name (https only; "
        "`*.` matches subdomains). Ignored without a MicrosoftAppId: then loopback only.",
    )
    connector_connect_timeout_s: float = Field(
        3.0, gt=0, description="Connect timeout of each call to the Bot Connector."
    )
    connector_read_timeout_s: float = Field(
        10.0, gt=0, description="Read timeout of each call to the Bot Connector."
    )
    bot_openid_metadata_url: str = Field(
        BOT_OPENID_METADATA_URL,
        description="Where Bot Framework publishes the keys that sign the tokens on incoming "
        "activities. Change it only for a sovereign cloud.",
    )
    bot_keys_timeout_s: float = Field(
        5.0,
        gt=0,
        le=30,
        description="Total time allowed to fetch Bot Framework's OpenID metadata and keys.",
    )

    dialog_expiry_h: float = Field(
        72.0,
        gt=0,
        description="A request dialog left unanswered this many hours is forgotten; its "
        "card then says to start again.",
    )

    # --- who approves, and what gets provisioned
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    resource_account_app_id: str | None = Field(
        None,
        description="ApplicationId bound to new resource accounts; defaults to the bot's app id, "
        "else the Auto Attendant id.",
    )
    upn_domain: str | None = Field(
        None, description="Domain of new resource accounts; the simulator's own when unset."
    )
    preferred_sku: str = "PHONESYSTEM_VIRTUALUSER"
    fallback_skus: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ENTERPRISEPREMIUM"]
    )

    # --- waiting: polling with backoff up to a deadline, never a fixed sleep
    poll_interval_s: float = Field(2.0, gt=0)
    poll_max_interval_s: float = Field(60.0, gt=0)
    propagation_deadline_s: float = Field(45 * 60, gt=0)
    bind_deadline_s: float = Field(30 * 60, gt=0)
    approval_timeout_s: float = Field(7 * 24 * 3600, gt=0)

    # --- the built-in Microsoft 365 simulator (used when no tenant is configured)
    simulator: EmbeddedSimulatorConfig = Field(default_factory=EmbeddedSimulatorConfig)
    simulator_port: int = Field(0, ge=0, le=65535, description="0 picks a free port.")
    simulator_url: str | None = Field(
        None,
        description="Use a simulator already running there (`phonedesk simulator`) instead of "
        "starting one in-process, so its tenant state outlives this process.",
    )

    @field_validator("approvers", "fallback_skus", "service_url_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_list(value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.app_id and self.app_type != "UserAssignedMSI" and self.app_password is None:
            raise ValueError("MicrosoftAppId is set but MicrosoftAppPassword is missing")
        if self.app_type == "SingleTenant" and self.app_id and not self.app_tenant_id:
            raise ValueError("MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId")
        tenant_fields = {
            "PHONEDESK_CLIENT_ID": self.client_id,
            "PHONEDESK_CLIENT_SECRET or PHONEDESK_CLIENT_CERTIFICATE_PATH": self.client_secret
            or self.client_certificate_path,
        }
        if self.tenant_id:
            missing = [name for name, value in tenant_fields.items() if not value]
            if missing:
                raise ValueError(f"PHONEDESK_TENANT_ID is set but {', '.join(missing)} is missing")
            if self.client_secret and self.client_certificate_path:
                raise ValueError(
                    "set either PHONEDESK_CLIENT_SECRET or "
                    "PHONEDESK_CLIENT_CERTIFICATE_PATH, not both"
                )
            if self.client_certificate_path and not self.client_certificate_thumbprint:
                raise ValueError(
                    "PHONEDESK_CLIENT_CERTIFICATE_PATH needs "
                    "PHONEDESK_CLIENT_CERTIFICATE_THUMBPRINT"
                )
            if not self.upn_domain:
                raise ValueError(
                    "PHONEDESK_TENANT_ID is set but PHONEDESK_UPN_DOMAIN (the domain of new "
                    "resource accounts, e.g. contoso.onmicrosoft.com) is missing"
                )
        elif self.client_id or self.client_secret or self.client_certificate_path:
            raise ValueError("tenant credentials are set but PHONEDESK_TENANT_ID is missing")
        return self

    # --- derived values

    @property
    def uses_simulator(self) -> bool:
        return self.tenant_id is None

    @property
    def bot_auth_enabled(self) -> bool:
        return bool(self.app_id)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return default_database_url(self.data_dir)

    @property
    def effective_upn_domain(self) -> str:
        return self.upn_domain or self.simulator.tenant_domain

    @property
    def effective_resource_account_app_id(self) -> str:
        return self.resource_account_app_id or self.app_id or AUTO_ATTENDANT_APP_ID

    def check_bind_address(self) -> None:
        """Anonymous bot traffic is only acceptable on loopback."""
        if self.bot_auth_enabled or is_loopback_host(self.host):
            return
        raise ConfigError(
            f"refusing to listen on {self.host}: without MicrosoftAppId/MicrosoftAppPassword the "
            "bot accepts unauthenticated requests, which is only allowed on loopback "
            "(PHONEDESK_HOST=127.0.0.1). Set the bot credentials to listen publicly."
        )


def is_loopback_host(host: str) -> bool:
    """``host``, a name or an address without a port, can only mean this machine.

    One answer for where the bot may listen anonymously and for which ``Host``, ``Origin``
    and ``serviceUrl`` it accepts then. (The local API's peer check takes addresses only.)
    """
    name = host.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _env_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "settings"
    field = str(loc[0])
    for name, info in Settings.model_fields.items():
        # pydantic reports a field read through an alias under that alias's name.
        if not isinstance(info.validation_alias, AliasChoices):
            continue
        names = [str(choice) for choice in info.validation_alias.choices]
        if field == name or field in names:
            return next((n for n in names if _was_set(n)), names[0])
    parts = [str(p) for p in loc]
    return ENV_PREFIX + "__".join(parts).upper()


def _was_set(name: str) -> bool:
    """Whether the user set this variable, so an error names the one they actually typed."""
    wanted = name.casefold()
    if any(key.casefold() == wanted for key in os.environ):
        return True
    env_file = Settings.model_config.get("env_file")
    if isinstance(env_file, str) and Path(env_file).is_file():
        return any(key.casefold() == wanted for key in dotenv_values(env_file))
    return False


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                lines.append(f"  {_env_name(error['loc'])}: {message}")
            else:
                lines.append(f"  {message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
