"""Options to a `ProjectionConfig`: the one place that applies a preset, `--loss-plugin`, `--param` and the rest.

Used by `facemath project`/`complete`, the benchmarks and the report, so the same options mean the same run
everywhere.
"""

from __future__ import annotations

from dataclasses import replace

from facemath_core.projection.projector import ProjectionConfig, apply_params, parse_loss_options, with_preset


def projection_config(
    registry,
    *,
    preset: str | None = None,
    loss_plugins: list[str] | None = None,
    params: list[str] | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    init: str | None = None,
    restarts: int = 1,
    constraint: str | None = None,
    mask: str = "full",
    blend: str | None = None,
    model: str = "gan",
    seed: int = 0,
    batch_size: int = 64,
    patience: int = 200,
) -> ProjectionConfig:
    """The config for these options. `None` means "the preset's value, else the default"; `--param NAME.KEY=V`
    goes to the component of this run called NAME (`projection.apply_params`), `lr` to the optimizer. `init=None`
    without a preset is the best start (the model's own encoder when it has one, `projector.resolve_start`); a
    preset keeps its paper's start."""
    config = with_preset(ProjectionConfig(), preset)
    losses = parse_loss_options(loss_plugins, config.losses, registry)
    opt = optimizer or config.optimizer
    config = replace(
        config,
        losses=losses,
        optimizer=opt,
        # The preset's optimizer settings belong to the preset's optimizer only.
        optimizer_params=config.optimizer_params if opt == config.optimizer else {},
        steps=config.steps if steps is None else steps,
        init=init if init is not None else (config.init if preset else None),
        restarts=restarts,
        constraint=constraint or config.constraint,
        mask=mask,
        blend=blend or config.blend,
        model=model,
        seed=seed,
        batch_size=batch_size,
        patience=patience,
    )
    return apply_params(config, params, registry, lr=lr)
