"""Options to a ProjectionConfig: the one builder the CLI and the benchmarks share."""

from __future__ import annotations

from dataclasses import replace

import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.host.manager import load_registry
from facemath_core.projection.projector import PRESETS, LossSpec, ProjectionConfig
from facemath_core.projection.settings import projection_config


@pytest.fixture(scope="module")
def registry():
    return load_registry(builtins_only=True)  # facemath's own plugins, whatever else is installed


def test_no_options_is_the_default_config(registry):
    # but for the start: None, the best one, the model's own encoder when it has one (resolved with the models)
    assert projection_config(registry) == replace(ProjectionConfig(), init=None)
    assert projection_config(registry, preset="amos2016").init == "uniform"  # the papers' start


# The anchors' own settings, transcribed from their sources (not from PRESETS, which is what is checked):
# - Amos 2016, bamos/dcgan-completion.tensorflow: complete.py's defaults --approach adam --lr 0.01 --beta1 0.9
#   --beta2 0.999 --nIter 1000 --lam 0.1; model.py: contextual = sum |mask * (G(z) - x)|, perceptual = the
#   generator's non-saturating loss, and `zhats = np.clip(zhats, -1, 1)` after every Adam step.
# - Yeh et al. 2017, "Semantic Image Inpainting with Perceptual and Contextual Losses": lambda = 0.003, 1500
#   iterations, the contextual loss weighted by a 7x7 window around the hole, perceptual loss log(1 - D(G(z))),
#   and Poisson blending of the result.
# - Sirer 2016, "Face Math" (the talk; docs/projection.md's --preset row): l2 + 0.1 perceptual, momentum 0.75 at
#   lr 5e-4, 2000 steps.
SOURCES = {
    "amos2016": dict(
        losses={"contextual": 1.0, "perceptual": 0.1},
        loss_params={"contextual": {"reduce": "sum"}, "perceptual": {"form": "nonsaturating"}},
        optimizer="adam",
        optimizer_params={"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999},
        steps=1000,
        constraint="clip",
    ),
    "yeh2017": dict(
        losses={"weighted-contextual": 1.0, "perceptual": 0.003},
        loss_params={"weighted-contextual": {"window": 7}, "perceptual": {"form": "saturating"}},
        steps=1500,
        blend="poisson",
    ),
    "sirer2016": dict(
        losses={"l2": 1.0, "perceptual": 0.1},
        optimizer="momentum",
        optimizer_params={"lr": 5e-4, "momentum": 0.75},
        steps=2000,
    ),
}


def test_every_preset_has_a_source():
    assert sorted(PRESETS) == sorted(SOURCES)


@pytest.mark.parametrize("preset", list(SOURCES))
def test_a_preset_has_its_sources_settings(registry, preset):
    """What a projection with the preset runs with (the preset over the plugins' own defaults) is the source's."""
    config = projection_config(registry, preset=preset)
    source = SOURCES[preset]
    assert config.preset == preset
    assert {spec.name: spec.weight for spec in config.losses} == source["losses"]
    for spec in config.losses:
        effective = {**registry.get("loss", spec.name).defaults, **spec.params}
        for key, value in source.get("loss_params", {}).get(spec.name, {}).items():
            assert effective[key] == value, (spec.name, key)
    if "optimizer" in source:
        assert config.optimizer == source["optimizer"]
        effective = {**registry.get("optimizer", config.optimizer).defaults, **config.optimizer_params}
        assert {key: effective[key] for key in source["optimizer_params"]} == source["optimizer_params"]
    assert config.steps == source["steps"]
    for key in ("constraint", "blend"):
        if key in source:
            assert getattr(config, key) == source[key], key


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
