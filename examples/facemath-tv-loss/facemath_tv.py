"""An example facemath plugin package: one loss term, `tv`, the total variation of G(z).

Install it (`pip install examples/facemath-tv-loss`) and use it:

    facemath project faces/ --loss-plugin tv=0.01
"""

from facemath_core import LossTerm, hookimpl


def total_variation(target, generated, mask, disc_logits=None, scale: float = 1.0):
    """Sum of absolute differences between neighbouring pixels of G(z), one value per image."""
    import tensorflow as tf

    return scale * tf.image.total_variation(generated)


@hookimpl
def facemath_loss_terms():
    return [
        LossTerm(
            "tv",
            "Total variation of G(z): penalises noisy reconstructions.",
            total_variation,
            defaults={"scale": 1.0},
            default_weight=0.01,
        )
    ]
