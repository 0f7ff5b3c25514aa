"""Built-in loss terms of the projection objective (Amos 2016; Yeh et al. 2017).

Each is a pure function of tensors returning one value per image; weights live outside (the core sums
weight * term). TensorFlow is imported inside the functions so that listing plugins stays fast.
"""

from __future__ import annotations

from facemath_core import LossTerm, Param, hookimpl


def _per_image_sum(x):
    import tensorflow as tf

    return tf.reduce_sum(x, axis=[1, 2, 3])


def contextual(target, generated, mask, disc_logits=None, reduce: str = "sum"):
    """L1 distance on the known pixels per image: summed (Amos' contextual loss, 'sum') or averaged over the known
    pixel values ('mean').

    The sum grows with the image size and the share of known pixels while the perceptual term is one number per
    image, so a perceptual weight means something different at every size and mask; the mean makes it mean the
    same everywhere (lambda_mean = lambda_sum / known pixel values, docs/projection.md).
    """
    import tensorflow as tf

    distance = _per_image_sum(tf.abs(mask * (generated - target)))
    if reduce == "sum":
        return distance
    if reduce == "mean":
        # Known pixel *values*: the (B, H, W, 1) mask counts once per colour channel. An image with no known pixel
        # has distance 0, and the floor of 1 keeps it 0 instead of 0/0.
        known = _per_image_sum(tf.broadcast_to(mask, tf.shape(generated)))
        return distance / tf.maximum(known, 1.0)
    raise ValueError(f"contextual reduce {reduce!r}: choose sum or mean")


def yeh_weights(mask, window: int = 7):
    """Yeh et al.'s importance weights: a known pixel counts by the share of missing pixels in its window, so
    pixels next to the hole matter most and those far from it not at all."""
    import tensorflow as tf

    missing_share = tf.nn.avg_pool2d(1.0 - mask, window, 1, "SAME")
    return mask * missing_share


def weighted_contextual(target, generated, mask, disc_logits=None, window: int = 7):
    """L1 on known pixels weighted by how many missing pixels surround them (Yeh et al. 2017, eq. 3).

    The weights are defined relative to a hole; for an image without one (plain projection) every known pixel
    weighs 1, so the term falls back to the contextual loss instead of vanishing.
    """
    import tensorflow as tf

    has_hole = tf.reduce_any(mask < 0.5, axis=[1, 2, 3], keepdims=True)
    weights = tf.where(has_hole, yeh_weights(mask, int(window)), mask)
    return _per_image_sum(weights * tf.abs(generated - target))


def l2(target, generated, mask, disc_logits=None):
    """Squared error on the known pixels, summed per image."""
    import tensorflow as tf

    return _per_image_sum(tf.square(mask * (generated - target)))


def perceptual(target, generated, mask, disc_logits, form: str = "nonsaturating"):
    """The discriminator's verdict on G(z): -log D(G(z)) ('nonsaturating', Amos) or log(1 - D(G(z)))
    ('saturating', Yeh)."""
    import tensorflow as tf

    if form == "saturating":
        return -tf.nn.softplus(disc_logits)  # log(1 - sigmoid(l)) = -softplus(l)
    if form == "nonsaturating":
        return tf.nn.softplus(-disc_logits)  # -log(sigmoid(l)) = softplus(-l)
    raise ValueError(f"perceptual form {form!r}: choose nonsaturating or saturating")


def lowres(target, generated, mask, disc_logits=None, factor: int = 4):
    """L1 between block averages (factor x factor) of G(z) and the target: matches a low-resolution image and
    leaves the detail free (super-resolution). Ignores the mask."""
    import tensorflow as tf

    factor = int(factor)
    down = lambda x: tf.nn.avg_pool2d(x, factor, factor, "VALID")  # noqa: E731
    return _per_image_sum(tf.abs(down(generated) - down(target))) * factor * factor


def in_domain(target, generated, mask, disc_logits=None, z=None, encoded=None):
    """||z - E(G(z))||^2 summed over z's dimensions (Zhu et al. 2020's domain regulariser): keeps z where the
    encoder would put the face it makes, the region of z the generator was trained on. Ignores the images."""
    import tensorflow as tf

    return tf.reduce_sum(tf.square(z - encoded), axis=1)


@hookimpl
def facemath_loss_terms():
    return [
        LossTerm(
            "contextual",
            "Masked L1 to the known pixels (Amos 2016).",
            contextual,
            {
                "reduce": Param(
                    "sum",
                    choices=("sum", "mean"),
                    help="Sum over the known pixel values (Amos) or their mean (lambda then means the same at every "
                    "image size and mask).",
                )
            },
        ),
        LossTerm(
            "weighted-contextual",
            "L1 weighted by the share of hole pixels in a 7x7 window (Yeh 2017).",
            weighted_contextual,
            {"window": Param(7, ge=1, help="Side of the square window, in pixels.")},
        ),
        LossTerm("l2", "Masked squared error to the known pixels.", l2),
        LossTerm(
            "perceptual",
            "Discriminator realism of G(z): -log D(G(z)) or log(1 - D(G(z))).",
            perceptual,
            {
                "form": Param(
                    "nonsaturating",
                    choices=("nonsaturating", "saturating"),
                    help="-log D(G(z)) (Amos) or log(1 - D(G(z))) (Yeh).",
                )
            },
            needs_discriminator=True,
            default_weight=0.1,
        ),
        LossTerm(
            "lowres",
            "L1 between block averages of G(z) and the image (super-resolution).",
            lowres,
            {"factor": Param(4, ge=1, help="Side of the averaged blocks, in pixels.")},
        ),
        LossTerm(
            "in-domain",
            "||z - E(G(z))||^2 with the model's own encoder (Zhu et al. 2020).",
            in_domain,
            needs_encoder=True,
            default_weight=10.0,
        ),
    ]
