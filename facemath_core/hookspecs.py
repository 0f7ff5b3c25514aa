"""Every hook a facemath plugin can implement.

A plugin is a module (or object) with functions decorated by `facemath_core.hookimpl` whose names match the specs
below. facemath calls every hook with keyword arguments and no arguments at all for the `facemath_<kind>s` hooks;
each returns a list of components (`facemath_core.components`), and the results of all plugins are merged by name.
"""

from __future__ import annotations

import pluggy

from facemath_core.components import Blender, LossTerm, Mask, Operator, Optimizer

hookspec = pluggy.HookspecMarker("facemath")


@hookspec
def facemath_loss_terms() -> list[LossTerm]:
    """Called once when the plugin manager is built; returns the loss terms this plugin provides.

    A loss term is chosen with `--loss-plugin NAME[=WEIGHT]` and added, weighted, to the projection objective.
    """


@hookspec
def facemath_optimizers() -> list[Optimizer]:
    """Called once when the plugin manager is built; returns the optimizers of z this plugin provides.

    An optimizer is chosen with `--optimizer NAME`; its `function(**params)` is called once per projection run.
    """


@hookspec
def facemath_operators() -> list[Operator]:
    """Called once when the plugin manager is built; returns the latent arithmetic operators this plugin provides.

    An operator is called by name inside `facemath math` expressions, e.g. `slerp(a, b, 0.5)`.
    """


@hookspec
def facemath_masks() -> list[Mask]:
    """Called once when the plugin manager is built; returns the completion masks this plugin provides.

    A mask is chosen with `facemath complete --mask NAME`; its function is called once per image.
    """


@hookspec
def facemath_blenders() -> list[Blender]:
    """Called once when the plugin manager is built; returns the blenders this plugin provides.

    A blender is chosen with `facemath complete --blend NAME`; its function is called once per completed image.
    """
