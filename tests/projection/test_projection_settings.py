"""Options to a ProjectionConfig: the one builder the CLI and the benchmarks share."""

from __future__ import annotations

import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.host.manager import load_registry
from facemath_core.projection.projector import PRESETS, LossSpec, ProjectionConfig
from facemath_core.projection.settings import projection_config


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_no_options_is_the_default_config(registry):
    assert projection_config(registry) == ProjectionConfig()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_preset_is_the_paper_settings_table(registry, preset):
    config = projection_config(registry, preset=preset)
    assert config.preset == preset
    for key, value in PRESETS[preset].items():
        assert getattr(config, key) == value, key


def test_options_change_the_preset_as_the_cli_documents(registry):
    config = projection_config(
        registry,
        preset="amos2016",
        loss_plugins=["perceptual=0.5", "l2"],
        params=["perceptual.form=saturating", "center.scale=0.3", "adam.beta_1=0.5"],
        lr=0.02,
        steps=7,
        mask="center",
        seed=4,
    )
    weights = {spec.name: spec.weight for spec in config.losses}
    default_l2 = registry.get("loss", "l2").default_weight
    assert weights == {"contextual": 1.0, "perceptual": 0.5, "l2": default_l2}
    assert [spec.name for spec in config.losses] == ["contextual", "perceptual", "l2"]
    assert next(s for s in config.losses if s.name == "perceptual").params == {"form": "saturating"}
    assert config.optimizer == "adam" and config.optimizer_params == {"lr": 0.02, "beta_1": 0.5}
    assert (config.steps, config.mask, config.mask_params, config.seed) == (7, "center", {"scale": 0.3}, 4)
    # Another optimizer does not inherit the preset's Adam settings.
    assert projection_config(registry, preset="amos2016", optimizer="sgd").optimizer_params == {}
    assert projection_config(registry, loss_plugins=["contextual=0", "l2=2"]).losses == (LossSpec("l2", 2.0),)


def test_bad_options_are_errors_naming_the_option(registry):
    with pytest.raises(FacemathError, match="--preset bogus"):
        projection_config(registry, preset="bogus")
    with pytest.raises(FacemathError, match="--loss-plugin"):
        projection_config(registry, loss_plugins=["contextual=0"])
    with pytest.raises(FacemathError, match="--param"):
        projection_config(registry, params=["noequals"])
