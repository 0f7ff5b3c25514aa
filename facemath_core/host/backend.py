"""The backend interface: the exported signatures as numpy calls, plus differentiable versions for tf.function.

A backend implements `call(model, signature, inputs)`, `metadata(model)` and `version(model)`; every named
operation here is built on them, so a new backend (another server, another protocol) needs little more than that.
Gradients of remote models cross the wire through the `vjp` / `grad` signatures, so any loss plugin works with any
backend. docs/plugins.md ("Writing a backend") lists every method: which to implement, which to override and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError

# gRPC's own target schemes (grpc/doc/naming.md): a `--server` target with any other `NAME://` belongs to a plugin.
GRPC_SCHEMES = frozenset({"dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock", "xds"})


class Backend:
    """Base class of every backend. Subclasses implement `call`, `metadata` and `version` (required); the rest
    has a default. A backend is a context manager: every command closes the one it opened when it ends."""

    name = "backend"
    max_batch = 256  # rows per call; larger inputs are split

    @staticmethod
    def plugin_scheme(target: str | None) -> str | None:
        """The URL scheme of a `--server` target that a backend plugin must claim (`kserve://...` -> "kserve"),
        or None for a target TF Serving's gRPC client takes (HOST:PORT, dns:///NAME:PORT, a list)."""
        match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", target or "")
        if match is None or match.group(1).lower() in GRPC_SCHEMES:
            return None
        return match.group(1).lower()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- to implement ---------------------------------------------------------------------------------------

    def call(
        self, model: str, signature: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Required. Run a signature on float32 numpy inputs; `outputs` may name the outputs wanted (default:
        all). Signature, input and output names are those of `facemath_core.base.signatures`."""
        raise NotImplementedError

    def metadata(self, model: str) -> dict:
        """Required. The export's metadata (z_dim, z_distribution, image_size, attribute names, ...); a
        FacemathError naming the model if it is missing."""
        raise NotImplementedError

    def version(self, model: str) -> int:
        """Required. The version of `model` that `call` runs."""
        raise NotImplementedError

    def available_versions(self, model: str) -> list[int]:
        """The versions of `model` this backend can run, oldest first; [] when it cannot tell."""
        return []

    def use_version(self, model: str, version: int) -> None:
        """Run `model` at this version from now on (the one a latents file was made with)."""
        raise FacemathError(f"{self.describe()}: cannot choose the version of {model}")

    def has(self, model: str) -> bool:
        try:
            self.require(model)
            return True
        except FacemathError:
            return False

    def require(self, model: str) -> None:
        """Raise FacemathError unless the model can be used; by default, unless its metadata can be read."""
        self.metadata(model)

    def describe(self) -> str:
        """How messages and latents.npz name it ("embedded models in DIR", "tfserving at HOST:PORT")."""
        return self.name

    def fused_objective(self, model: str, terms) -> Callable | None:
        """A backend that can run a whole projection step in one call returns `(z, target, mask) -> (values,
        total)` for these `(spec, component, params)` terms, with the gradient of `total` for z; None otherwise
        (the projection loop then composes the differentiable decoder and discriminator itself). When it also has
        `wire(targets, masks) -> arrays` (called once per batch), the loop calls it `(z, *arrays)` instead: the
        batch's targets and masks in whatever form the backend sends them (the TF Serving backend: uint8)."""
        return None

    def close(self) -> None:
        """Release connections, threads, files; called once when the command that opened the backend ends."""

    # --- built on call() ------------------------------------------------------------------------------------

    def batched(
        self, model: str, signature: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """`call`, split into rows of at most `max_batch`, answers concatenated."""
        rows = len(next(iter(inputs.values())))
        if rows <= self.max_batch:
            return self.call(model, signature, {k: np.asarray(v, np.float32) for k, v in inputs.items()}, outputs)
        parts = [
            self.call(
                model,
                signature,
                {k: np.asarray(v[i : i + self.max_batch], np.float32) for k, v in inputs.items()},
                outputs,
            )
            for i in range(0, rows, self.max_batch)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def generate(self, z, model: str = S.GENERATOR) -> np.ndarray:
        return self.batched(model, S.DEFAULT, {S.Z: z})[S.IMAGES]

    def decoder_vjp(self, z, cotangent, model: str = S.GENERATOR):
        out = self.batched(model, S.VJP, {S.Z: z, S.COTANGENT: cotangent})
        return out[S.IMAGES], out[S.Z_GRAD]

    def discriminate(self, images, model: str = S.DISCRIMINATOR) -> np.ndarray:
        return self.batched(model, S.DEFAULT, {S.IMAGES: images})[S.LOGITS]

    def discriminator_grad(self, images, model: str = S.DISCRIMINATOR):
        out = self.batched(model, S.GRAD, {S.IMAGES: images})
        return out[S.LOGITS], out[S.IMAGES_GRAD]

    def encode(self, images, model: str = S.VAE_ENCODER):
        """The mean and log-variance of z from a variational encoder (the VAE's or the VAE-GAN's)."""
        out = self.batched(model, S.DEFAULT, {S.IMAGES: images})
        return out[S.Z_MEAN], out[S.Z_LOG_VAR]

    def encode_z(self, images, decoder: str = S.GENERATOR) -> np.ndarray:
        """z for images from the encoder of `decoder`: the gan_encoder's z, or a variational encoder's mean."""
        encoder = S.ENCODER_OF[decoder]
        if encoder in S.VARIATIONAL_ENCODERS:
            return self.encode(images, encoder)[0]
        return self.batched(encoder, S.DEFAULT, {S.IMAGES: images})[S.Z]

    def judge(self, images) -> np.ndarray:
        """The attribute oracle's logits, one column per attribute in metadata(ORACLE)['attribute_names']."""
        return self.batched(S.ORACLE, S.DEFAULT, {S.IMAGES: images})[S.ATTRIBUTE_LOGITS]

    # --- differentiable callables for tf.function ---------------------------------------------------------

    def differentiable_decoder(self, model: str = S.GENERATOR) -> Callable:
        """z -> images as a TF op whose gradient is the model's `vjp` signature."""
        size = self.metadata(model)["image_size"]
        # Only z_grad comes back from the vjp: the images are already here (it saves a third of the traffic).
        return remote_op(
            lambda z: self.generate(z, model),
            lambda z, c: self.batched(model, S.VJP, {S.Z: z, S.COTANGENT: c}, [S.Z_GRAD])[S.Z_GRAD],
            [None, size, size, 3],
        )

    def differentiable_encoder(self, decoder: str = S.GENERATOR) -> Callable:
        """images -> z of the encoder of `decoder`, as a TF op whose gradient is the gan_encoder's `vjp` signature
        (the VAE encoder exports none: over a server it has no gradient)."""
        if decoder != S.GENERATOR:
            encoder = S.ENCODER_OF[decoder]
            raise FacemathError(f"{self.describe()}: the {encoder} has no vjp signature to differentiate through")
        return remote_op(
            lambda x: self.encode_z(x, decoder),
            lambda x, c: self.batched(S.GAN_ENCODER, S.VJP, {S.IMAGES: x, S.Z_COTANGENT: c}, [S.IMAGES_GRAD])[
                S.IMAGES_GRAD
            ],
            [None, self.metadata(S.GAN_ENCODER)["z_dim"]],
        )

    def differentiable_discriminator(self, model: str = S.DISCRIMINATOR) -> Callable:
        """images -> logits as a TF op whose gradient is the discriminator's `grad` signature."""
        import tensorflow as tf

        @tf.custom_gradient
        def discriminate(images):
            logits, images_grad = tf.numpy_function(
                lambda x: self.discriminator_grad(x, model), [images], [tf.float32, tf.float32], stateful=False
            )
            logits = tf.ensure_shape(logits, [None])

            def grad(upstream):
                return tf.reshape(upstream, [-1, 1, 1, 1]) * images_grad

            return logits, grad

        return discriminate


def remote_op(forward: Callable, backward: Callable, out_shape: list) -> Callable:
    """x -> forward(x) as a TF op computed outside TensorFlow (a model call through the backend), whose gradient is
    backward(x, cotangent): the model's vector-Jacobian-product signature, one more call."""
    import tensorflow as tf

    @tf.custom_gradient
    def op(x):
        y = tf.ensure_shape(tf.numpy_function(forward, [x], tf.float32, stateful=False), out_shape)

        def grad(cotangent):
            x_grad = tf.numpy_function(backward, [x, cotangent], tf.float32, stateful=False)
            return tf.ensure_shape(x_grad, x.shape)

        return y, grad

    return op
