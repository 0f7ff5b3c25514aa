"""Every hook a facemath plugin can implement.

A plugin is a module (or object) with functions decorated by `facemath_core.hookimpl` whose names match the specs
below. facemath calls every hook through pluggy (`manager.hook.facemath_*`, keyword arguments only), so `tryfirst`,
`trylast`, hook wrappers and tracing (`facemath --trace-plugins`) work as in pytest.

The `facemath_<kind>s` hooks take no arguments and return a list of components (`facemath_core.host.components`); the
results of all plugins are merged by name. `facemath_open_backend` is a `firstresult` hook: the first plugin that
recognises the `--server` target opens the backend.

Each docstring below is also the first paragraph of the hook's section in docs/plugins.md, word for word (a test
keeps them together). A new kind of component adds its hook here and its class in components.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from facemath_core.host.components import (
    Blender,
    Constraint,
    FaceDetector,
    Initializer,
    LossTerm,
    Mask,
    Operator,
    Optimizer,
    Sampler,
)

if TYPE_CHECKING:
    from facemath_core.host.backend import Backend

hookspec = pluggy.HookspecMarker("facemath")
# What plugins decorate their hook functions with; re-exported as `facemath_core.hookimpl`.
hookimpl = pluggy.HookimplMarker("facemath")


@hookspec
def facemath_loss_terms() -> list[LossTerm]:
    """Called once when the plugin registry is built; returns the loss terms this plugin provides. A loss term is
    chosen with `--loss-plugin NAME[=WEIGHT]` and added, weighted, to the projection objective (at
    `default_weight` when no weight is given); its function runs inside every optimisation step."""


@hookspec
def facemath_optimizers() -> list[Optimizer]:
    """Called once when the plugin registry is built; returns the optimizers of z this plugin provides. An
    optimizer is chosen with `--optimizer NAME`; its function is called once before the first step, to check what
    it returns, and then once per batch shape."""


@hookspec
def facemath_operators() -> list[Operator]:
    """Called once when the plugin registry is built; returns the latent arithmetic operators this plugin
    provides. An operator is called by name inside `facemath math` and `facemath analogy` expressions, e.g.
    `slerp(a, b, 0.5)`, and by `facemath interpolate --method NAME`."""


@hookspec
def facemath_masks() -> list[Mask]:
    """Called once when the plugin registry is built; returns the completion masks this plugin provides. A mask is
    chosen with `facemath complete --mask NAME`; its function is called once per image, before any
    optimisation."""


@hookspec
def facemath_blenders() -> list[Blender]:
    """Called once when the plugin registry is built; returns the blenders this plugin provides. A blender is
    chosen with `facemath complete --blend NAME`; its function is called once per completed image."""


@hookspec
def facemath_initializers() -> list[Initializer]:
    """Called once when the plugin registry is built; returns the z initialisers this plugin provides. An
    initialiser is chosen with `--init NAME`; its function is called once per image and restart, with `N` = 1, so
    that each face starts from its own seed whatever batch it is in."""


@hookspec
def facemath_constraints() -> list[Constraint]:
    """Called once when the plugin registry is built; returns the z constraints this plugin provides. A constraint
    is chosen with `--constraint NAME`; its function runs inside every optimisation step."""


@hookspec
def facemath_face_detectors() -> list[FaceDetector]:
    """Called once when the plugin registry is built; returns the face detectors this plugin provides. A detector
    is chosen with `--detector NAME` (`facemath align`, `edit`, and `--align` on `project`, `complete` and
    `encode`); its function is called once per photo, before any alignment."""


@hookspec
def facemath_samplers() -> list[Sampler]:
    """Called once when the plugin registry is built; returns the samplers of z this plugin provides. A sampler is
    chosen with `facemath complete --sampler NAME --samples N`; its function is called once per batch of images,
    after the optimisation, starting from each image's optimised z."""


@hookspec(firstresult=True)
def facemath_open_backend(models: str | None, server: str | None, options: dict[str, Any]) -> Backend | None:
    """Called each time a command opens its models; returns a `facemath_core.Backend`, or None when the target is
    not this plugin's. `models` is the model folder, resolved as every command resolves it (`--models`,
    $FACEMATH_MODELS, ./exported_models, the installed models; None with a `--server` when there is none),
    `server` the `--server` target (None without one) and `options` the model-source options (`version`, the
    `--model-version` or None; `label`, `timeout`, the TLS files, `in_flight`, ...). The first non-None result
    wins; the built-in backends are `trylast`, so a plugin can claim a URL scheme such as `kserve://`. The command
    calls the backend's `close()` when it ends."""
