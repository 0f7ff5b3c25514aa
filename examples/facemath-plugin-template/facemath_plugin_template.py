"""A template facemath plugin: one loss term (`edges`), one latent operator (`towards`) and one completion mask
(`stripes`). Copy the folder, rename the distribution, the module and the components, keep what you need.

Every component is a small frozen dataclass from `facemath_core` with a name, a one-line help, a pure function and
its parameters; a parameter declared with `Param` gets its type, choices or range checked (and shown by
`facemath plugins`) before any work. docs/plugins.md has every hook and contract.
"""

from __future__ import annotations

import numpy as np

from facemath_core import LossTerm, Mask, Operator, Param, hookimpl


def edges(target, generated, mask, disc_logits=None, norm: str = "l1"):
    """Distance between the image gradients (horizontal and vertical pixel differences) of G(z) and the target,
    where both pixels of a difference are known; one value per image. It runs inside the step's tf.function:
    TensorFlow ops only."""
    import tensorflow as tf  # imported here: listing plugins stays fast

    def differences(x):
        return x[:, 1:, :, :] - x[:, :-1, :, :], x[:, :, 1:, :] - x[:, :, :-1, :]

    total = 0.0
    for (g, t), m in zip(
        zip(differences(generated), differences(target), strict=True),
        (mask[:, 1:, :, :] * mask[:, :-1, :, :], mask[:, :, 1:, :] * mask[:, :, :-1, :]),
        strict=True,
    ):
        gap = m * (g - t)
        total += tf.reduce_sum(tf.abs(gap) if norm == "l1" else tf.square(gap), axis=[1, 2, 3])
    return total


def towards(a, b, amount: float = 0.5):
    """a moved `amount` of the way to b: a + amount (b - a)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a + np.float32(amount) * (b - a)


def stripes(shape, rng, image_name, width: int = 4):
    """Horizontal stripes `width` pixels high, every other one missing."""
    rows = (np.arange(shape[0]) // int(width)) % 2 == 0
    return np.repeat(rows[:, None], shape[1], axis=1).astype(np.float32)


@hookimpl
def facemath_loss_terms():
    return [
        LossTerm(
            "edges",
            "Distance between the image gradients of G(z) and the image, on known pixels.",
            edges,
            {"norm": Param("l1", choices=("l1", "l2"), help="Absolute (l1) or squared (l2) differences.")},
            default_weight=0.5,
        )
    ]


@hookimpl
def facemath_operators():
    return [
        Operator(
            "towards",
            "towards(a, b): a moved part of the way to b.",
            towards,
            {"amount": Param(0.5, ge=0, le=1, help="Share of the way from a to b.")},
            arity=2,
        )
    ]


@hookimpl
def facemath_masks():
    return [
        Mask(
            "stripes",
            "Every other horizontal stripe missing.",
            stripes,
            {"width": Param(4, ge=1, help="Height of a stripe, in pixels.")},
        )
    ]
