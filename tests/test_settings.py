"""Settings: read once, Bot Framework names accepted, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.settings import (
    AUTO_ATTENDANT_APP_ID,
    DEMO_TIME_SCALE,
    ConfigError,
    Settings,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PHONEDESK_") or name.startswith("MicrosoftApp"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no stray .env


def test_defaults_give_the_embedded_simulator_on_loopback() -> None:
    settings = load_settings()
    assert settings.uses_simulator
    assert not settings.bot_auth_enabled
    assert (settings.host, settings.port) == ("127.0.0.1", 3978)
    assert settings.simulator.time_scale == DEMO_TIME_SCALE
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_resource_account_app_id == AUTO_ATTENDANT_APP_ID
    settings.check_bind_address()


def test_bot_framework_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("MicrosoftAppPassword", "s3cret")
    monkeypatch.setenv("MicrosoftAppType", "SingleTenant")
    monkeypatch.setenv("MicrosoftAppTenantId", "contoso-tenant")
    settings = load_settings()
    assert settings.app_id == "11111111-2222-3333-4444-555555555555"
    assert settings.app_password is not None
    assert settings.app_password.get_secret_value() == "s3cret"
    assert settings.app_type == "SingleTenant"
    assert settings.app_tenant_id == "contoso-tenant"
    assert "s3cret" not in repr(settings)
    # with bot credentials, a public address is fine
    Settings(_env_file=None, host="0.0.0.0", app_id="x", app_password="y").check_bind_address()


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_PORT", "4000")
    monkeypatch.setenv("PHONEDESK_APPROVERS", "aad-1, aad-2 ,")
    monkeypatch.setenv("PHONEDESK_FALLBACK_SKUS", "ENTERPRISEPREMIUM,SPE_E5")
    monkeypatch.setenv("PHONEDESK_SIMULATOR__SEED", "42")
    settings = load_settings()
    assert settings.port == 4000
    assert settings.approvers == ["aad-1", "aad-2"]
    assert settings.fallback_skus == ["ENTERPRISEPREMIUM", "SPE_E5"]
    assert settings.simulator.seed == 42


def test_a_bad_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_PORT", "eighty")
    with pytest.raises(ConfigError, match="PHONEDESK_PORT"):
        load_settings()


def test_an_app_id_without_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", "some-app")
    with pytest.raises(ConfigError, match="MicrosoftAppPassword is missing"):
        load_settings()


def test_half_configured_tenant_credentials_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_TENANT_ID", "contoso")
    monkeypatch.setenv("PHONEDESK_CLIENT_ID", "app")
    with pytest.raises(
        ConfigError, match="PHONEDESK_CLIENT_SECRET or PHONEDESK_CLIENT_CERTIFICATE_PATH"
    ):
        load_settings()


def test_secret_and_certificate_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_TENANT_ID", "contoso")
    monkeypatch.setenv("PHONEDESK_CLIENT_ID", "app")
    monkeypatch.setenv("PHONEDESK_CLIENT_SECRET", "x")
    monkeypatch.setenv("PHONEDESK_CLIENT_CERTIFICATE_PATH", "/tmp/cert.pem")
    with pytest.raises(ConfigError, match="not both"):
        load_settings()


def test_tenant_credentials_switch_off_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_TENANT_ID", "contoso")
    monkeypatch.setenv("PHONEDESK_CLIENT_ID", "app")
    monkeypatch.setenv("PHONEDESK_CLIENT_SECRET", "hunter2-tenant-secret")
    monkeypatch.setenv("PHONEDESK_UPN_DOMAIN", "contoso.onmicrosoft.com")
    settings = load_settings()
    assert not settings.uses_simulator
    assert "hunter2-tenant-secret" not in repr(settings)


def test_anonymous_bot_refuses_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_HOST", "0.0.0.0")
    settings = load_settings()
    with pytest.raises(ConfigError, match="only allowed on loopback"):
        settings.check_bind_address()


def test_one_simulator_variable_keeps_the_demo_time_scale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHONEDESK_SIMULATOR__SEED", "7")
    settings = load_settings()
    assert settings.simulator.seed == 7
    assert settings.simulator.time_scale == DEMO_TIME_SCALE


def test_resource_accounts_use_the_simulators_domain_by_default() -> None:
    settings = load_settings()
    assert settings.effective_upn_domain == settings.simulator.tenant_domain


def test_a_real_tenant_needs_a_upn_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_TENANT_ID", "contoso")
    monkeypatch.setenv("PHONEDESK_CLIENT_ID", "app")
    monkeypatch.setenv("PHONEDESK_CLIENT_SECRET", "x")
    monkeypatch.delenv("PHONEDESK_UPN_DOMAIN", raising=False)
    with pytest.raises(ConfigError, match="PHONEDESK_UPN_DOMAIN"):
        load_settings()


def test_a_bad_simulator_knob_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_SIMULATOR__TIME_SCALE", "-1")
    with pytest.raises(ConfigError, match="PHONEDESK_SIMULATOR__TIME_SCALE"):
        load_settings()


@pytest.mark.parametrize("variable", ["MicrosoftAppType", "PHONEDESK_APP_TYPE"])
def test_a_bad_value_is_reported_under_the_name_the_user_set(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "Nonsense")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    problems = str(caught.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in problems] == [variable]


def test_a_bad_value_in_dot_env_is_reported_under_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PHONEDESK_APP_TYPE=Nonsense\n")
    with pytest.raises(ConfigError, match=r"PHONEDESK_APP_TYPE:"):
        load_settings()
