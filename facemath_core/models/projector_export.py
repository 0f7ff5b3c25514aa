"""The composite `projector` SavedModel: a whole projection step's forward and backward pass in one signature.

Through TF Serving, a step with the generator and discriminator as separate models costs three requests
(generator forward, discriminator gradient, generator vjp) and moves the images back and forth four times. The
projector's `step` signature takes z, the target images, the mask and the weights of the built-in loss terms
(`signatures.PROJECTOR_TERMS`) and returns every term per image, the weighted total, the gradient of the total
for z and the images: one request per step, only z, the targets and the mask on the way in.

The targets are the same every step and were 8-bit pixels once: `step_pixels` takes them as uint8 (a quarter of
float32's bytes) and a 0/1 mask as uint8, and `step_pixels_unmasked` takes no mask at all (every pixel known: plain
projection), so a step at batch 64 moves about 0.8 MiB instead of 4. The server turns pixel value v into the
float the client's `data.images.to_unit` makes of it through a table of those 256 floats, so the result is the
float signature's, bit for bit. The float `step` stays, for clients older than version 3 of this export.

It is built from exported generator and discriminator versions (no training involved): their SavedModels are
loaded, composed in one `tf.function` with the same loss functions the projection loop uses (the built-in loss
plugins), and saved with `tf.saved_model.save`, whose variables the TF1 loader (TF Serving's path) finds, since
there is no Keras 3 object in the graph. Every input and output has the batch dimension first and every row is
independent (BatchNorm in inference mode inside the exported signatures), so TF Serving's batching may
concatenate requests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir
from facemath_core.base.version import __version__
from facemath_core.data.images import to_unit
from facemath_core.host.manager import load_registry
from facemath_core.models.cards import check_portable, composite_card
from facemath_core.models.layout import existing_versions, read_metadata

WARMUP_FILE = "tf_serving_warmup_requests"


def export_projector(
    to: str | Path, version: int | None = None, prefix: str = "", as_version: int | None = None
) -> Path:
    """Write `<to>/<prefix_>projector/<as_version>/` from the generator and discriminator of `version` (default:
    the newest generator version that has a discriminator of the same number); `as_version` defaults to
    `version` (a newer projector of the same models, e.g. with new signatures, takes a version of its own).
    Returns the version folder."""

    to = Path(to)
    g_name, d_name = S.model_name(S.GENERATOR, prefix), S.model_name(S.DISCRIMINATOR, prefix)
    both = sorted(set(existing_versions(to / g_name)) & set(existing_versions(to / d_name)))
    if not both:
        raise FacemathError(f"--to {to}: no version with both a {g_name} and a {d_name} to build the projector from")
    version = both[-1] if version is None else version
    if version not in both:
        raise FacemathError(f"--to {to}: no {g_name}/{version} and {d_name}/{version} pair (pairs: {both})")
    as_version = version if as_version is None else as_version
    final = to / S.model_name(S.PROJECTOR, prefix) / str(as_version)
    if final.exists():
        raise FacemathError(f"--to {to}: {final.parent.name}/{as_version} already exists")
    with atomic_dir(final) as tmp:
        write_projector(to / g_name / str(version), to / d_name / str(version), tmp, final.parent.name, version)
    return final


def write_projector(
    generator_dir: Path, discriminator_dir: Path, target: Path, name: str = S.PROJECTOR, version: int | None = None
) -> None:
    """Compose the two SavedModels into the projector SavedModel in the folder `target`. `version`: theirs (default:
    the name of their folders)."""
    import tensorflow as tf

    g_meta, d_meta = read_metadata(generator_dir), read_metadata(discriminator_dir)
    size, z_dim = g_meta["image_size"], g_meta["z_dim"]
    if d_meta["image_size"] != size:
        raise FacemathError(f"{discriminator_dir}: image size {d_meta['image_size']} != the generator's {size}")
    # The built-in terms only: the projector's terms are facemath's own (S.PROJECTOR_TERMS), and an installed
    # third-party plugin that shadows or breaks a name must not change (or stop) what gets exported.
    registry = load_registry(builtins_only=True)
    terms = [(registry.get("loss", term).function, params) for _, term, params in S.PROJECTOR_TERMS]
    module = tf.Module()
    module.generator = tf.saved_model.load(str(generator_dir))
    module.discriminator = tf.saved_model.load(str(discriminator_dir))
    decode = module.generator.signatures[S.DEFAULT]
    judge = module.discriminator.signatures[S.DEFAULT]
    metadata = {
        **{k: g_meta[k] for k in ("z_dim", "z_distribution", "image_size", "value_range", "arch")},
        "model": name,
        "family": "composite",
        "components": {
            base: {"version": version or int(folder.name), "training": meta.get("training"), "card": meta.get("card")}
            for base, folder, meta in (
                (S.GENERATOR, generator_dir, g_meta),
                (S.DISCRIMINATOR, discriminator_dir, d_meta),
            )
        },
        "loss_columns": [column for column, _, _ in S.PROJECTOR_TERMS],
        "loss_terms": [{"column": c, "term": t, "params": p} for c, t, p in S.PROJECTOR_TERMS],
        "facemath_version": __version__,
        "signatures": {
            sig: {"inputs": list(s.inputs), "outputs": list(s.outputs)}
            for sig, s in {**S.SIGNATURES[S.PROJECTOR], **S.OPTIONAL_SIGNATURES[S.PROJECTOR]}.items()
        },
    }
    metadata["card"] = composite_card(metadata["components"])
    check_portable(metadata, f"projector {name}")
    metadata_json = json.dumps(metadata, sort_keys=True)

    def objective(z, target, mask, loss_weights):
        with tf.GradientTape() as tape:
            tape.watch(z)
            images = decode(z=z)[S.IMAGES]
            logits = judge(images=images)[S.LOGITS]
            losses = tf.stack([fn(target, images, mask, logits, **params) for fn, params in terms], axis=1)
            # Each row's total depends on its own z only, so the gradient of the sum is every row's own gradient.
            total = tf.reduce_sum(losses * loss_weights, axis=1)
        return {S.LOSSES: losses, S.TOTAL: total, S.Z_GRAD: tape.gradient(total, z), S.IMAGES: images}

    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name=S.Z)
    weights_spec = tf.TensorSpec([None, len(S.PROJECTOR_TERMS)], tf.float32, name=S.LOSS_WEIGHTS)
    pixels_spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name=S.PIXELS)
    # The floats `to_unit` makes of the 256 pixel values: a lookup gives the client's targets bit for bit.
    unit = tf.constant(to_unit(np.arange(256, dtype=np.uint8)))

    def from_pixels(pixels):
        return tf.gather(unit, tf.cast(pixels, tf.int32))

    @tf.function(
        input_signature=[
            z_spec,
            tf.TensorSpec([None, size, size, 3], tf.float32, name=S.TARGET),
            tf.TensorSpec([None, size, size, 1], tf.float32, name=S.MASK),
            weights_spec,
        ]
    )
    def step(z, target, mask, loss_weights):
        return objective(z, target, mask, loss_weights)

    @tf.function(
        input_signature=[
            z_spec,
            pixels_spec,
            tf.TensorSpec([None, size, size, 1], tf.uint8, name=S.KNOWN),
            weights_spec,
        ]
    )
    def step_pixels(z, pixels, known, loss_weights):
        return objective(z, from_pixels(pixels), tf.cast(known, tf.float32), loss_weights)

    @tf.function(input_signature=[z_spec, pixels_spec, weights_spec])
    def step_pixels_unmasked(z, pixels, loss_weights):
        target = from_pixels(pixels)
        return objective(z, target, tf.ones_like(target[..., :1]), loss_weights)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=S.METADATA_INDEX)])
    def describe(index):
        return {S.METADATA_JSON: tf.fill(tf.shape(index), tf.constant(metadata_json))}

    module.step, module.describe = step, describe
    module.step_pixels, module.step_pixels_unmasked = step_pixels, step_pixels_unmasked
    signatures = {S.STEP: step, S.STEP_PIXELS: step_pixels, S.STEP_PIXELS_UNMASKED: step_pixels_unmasked}
    tf.saved_model.save(module, str(target), signatures={**signatures, S.METADATA: describe})
    extra = target / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / S.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    _write_warmup(extra / WARMUP_FILE, name, z_dim, size)


def _write_warmup(path: Path, name: str, z_dim: int, size: int) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    z, weights = np.zeros((1, z_dim), np.float32), np.zeros((1, len(S.PROJECTOR_TERMS)), np.float32)
    pixels = np.zeros((1, size, size, 3), np.uint8)
    inputs = {
        S.STEP: {
            S.Z: z,
            S.TARGET: np.zeros((1, size, size, 3), np.float32),
            S.MASK: np.ones((1, size, size, 1), np.float32),
            S.LOSS_WEIGHTS: weights,
        },
        S.STEP_PIXELS: {
            S.Z: z,
            S.PIXELS: pixels,
            S.KNOWN: np.ones((1, size, size, 1), np.uint8),
            S.LOSS_WEIGHTS: weights,
        },
        S.STEP_PIXELS_UNMASKED: {S.Z: z, S.PIXELS: pixels, S.LOSS_WEIGHTS: weights},
        S.METADATA: {S.METADATA_INDEX: np.zeros(1, np.float32)},
    }
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, values in inputs.items():
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            for alias, value in values.items():
                request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
