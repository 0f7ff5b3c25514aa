"""Built-in z constraints: how the search keeps z inside the prior's box."""

from __future__ import annotations

import numpy as np

from facemath_core import Constraint, hookimpl


def clip(variable, bound, generator):
    """Clip every component to [-bound, bound] after each update (Amos 2016)."""
    import tensorflow as tf

    return tf.clip_by_value(variable, -bound, bound)


def stochastic(variable, bound, generator):
    """Lipton & Tripathi 2017: components that leave the box are redrawn uniformly inside it."""
    import tensorflow as tf

    redraw = generator.uniform(tf.shape(variable), -bound, bound)
    return tf.where(tf.abs(variable) > bound, redraw, variable)


def unchanged(variable, bound, generator):
    """No projection step."""
    return variable


def tanh_to_z(variable, bound):
    import tensorflow as tf

    return bound * tf.tanh(variable)


def tanh_from_z(z, bound):
    return np.arctanh(np.clip(np.asarray(z) / bound, -0.999, 0.999)).astype(np.float32)


@hookimpl
def facemath_constraints():
    return [
        Constraint("clip", "Clip z to the box after each step (Amos 2016).", clip),
        Constraint("stochastic", "Redraw components that leave the box (Lipton & Tripathi 2017).", stochastic),
        Constraint(
            "tanh", "Optimise v with z = bound * tanh(v): always inside.", unchanged, to_z=tanh_to_z, from_z=tanh_from_z
        ),
        Constraint("none", "No constraint: z may leave the prior's box.", unchanged),
    ]
