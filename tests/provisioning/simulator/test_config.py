"""Defaults that mirror Microsoft, and settings that refuse nonsense with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from provisioning.simulator.config import KnobError, Knobs, SimulatorConfig, patch_knobs


def test_defaults_at_scale_one_are_the_real_services_timings() -> None:
    config = SimulatorConfig()
    assert config.time_scale == 1.0
    assert (config.propagation_min_s, config.propagation_max_s) == (15 * 60, 20 * 60)
    assert config.reservation_expiry_s == 16 * 60
    assert config.rate_limit_rps is None
    assert (config.fault_rate_5xx, config.fault_rate_timeout) == (0, 0)
    assert (config.phone_resource_units, config.e5_units) == (10, 5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"time_scale": 0}, "time_scale"),
        ({"fault_rate_5xx": 1.5}, "fault_rate_5xx"),
        ({"fault_rate_timeout": -0.1}, "fault_rate_timeout"),
        ({"propagation_min_s": 600, "propagation_max_s": 60}, "must not exceed propagation_max_s"),
        ({"fault_rate_5xx": 0.6, "fault_rate_timeout": 0.6}, "must not exceed 1"),
        ({"search_delay_s": 1000}, "shorter than reservation_expiry_s"),
        ({"rate_limit_rps": 0}, "rate_limit_rps"),
        ({"unknown_knob": 1}, "unknown_knob"),
    ],
)
def test_bad_settings_are_refused_naming_the_problem(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        SimulatorConfig.model_validate(settings)


def test_knobs_are_the_runtime_subset_of_the_config() -> None:
    config = SimulatorConfig(rate_limit_rps=5, time_scale=0.01)
    assert config.knobs().rate_limit_rps == 5
    assert "time_scale" not in Knobs.model_fields


def test_patching_knobs_validates_the_result_as_a_whole() -> None:
    knobs = patch_knobs(Knobs(), {"propagation_min_s": 1, "propagation_max_s": 2})
    assert (knobs.propagation_min_s, knobs.propagation_max_s) == (1, 2)
    with pytest.raises(KnobError, match="must not exceed"):
        patch_knobs(knobs, {"propagation_min_s": 3})


def test_patching_an_unknown_or_start_only_setting_is_refused() -> None:
    with pytest.raises(KnobError, match="unknown knob 'fault_rate'"):
        patch_knobs(Knobs(), {"fault_rate": 0.5})
    with pytest.raises(KnobError, match="'seed' is fixed when the simulator starts"):
        patch_knobs(Knobs(), {"seed": 3})
