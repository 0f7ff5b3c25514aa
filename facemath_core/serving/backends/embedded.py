"""The embedded backend: the exported SavedModels loaded in-process with `tf.saved_model.load`.

The default backend. It runs the same SavedModels a TF Serving server would, and hands the projection loop the
signature functions themselves, so that a whole optimisation step (forward, losses, gradient, update) compiles
into one `tf.function`. It reads the model folder through `model_layout` only (never through export/training).
"""

from __future__ import annotations

import threading
from pathlib import Path

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.host.backend import Backend
from facemath_core.models.layout import existing_versions, load_saved_model, read_metadata


class EmbeddedBackend(Backend):
    name = "embedded"
    max_batch = 512

    def __init__(self, models: str | Path = "exported_models", prefix: str = "", versions: dict | None = None):
        self.root = Path(models)
        if not self.root.is_dir():
            raise FacemathError(f"--models {self.root}: no such folder")
        self.prefix = prefix
        self.versions = dict(versions or {})
        self._loaded: dict[str, object] = {}
        self._metadata: dict[str, dict] = {}
        # Threads share a backend (the studio's sessions): each model is loaded once, under this lock. Two loads of
        # one model would leave the first one's functions pointing at variables freed with it.
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"embedded models in {self.root}"

    def available_versions(self, model: str) -> list[int]:
        return existing_versions(self.root / S.model_name(model, self.prefix))

    def use_version(self, model: str, version: int) -> None:
        with self._lock:
            if self.versions.get(model) != version:
                self.versions[model] = int(version)
                self._loaded.pop(model, None)
                self._metadata.pop(model, None)

    def _dir(self, model: str) -> Path:
        name = S.model_name(model, self.prefix)
        available = existing_versions(self.root / name)
        if not available:
            raise FacemathError(
                f"--models {self.root}: no {name} model (expected {self.root / name}/<version>/saved_model.pb)"
            )
        version = self.versions.get(model, available[-1])
        if version not in available:
            raise FacemathError(f"--models {self.root}: {name} has no version {version} (has {available})")
        return self.root / name / str(version)

    def version(self, model: str) -> int:
        return int(self._dir(model).name)

    def metadata(self, model: str) -> dict:
        if model not in self._metadata:
            self._metadata[model] = read_metadata(self._dir(model))
        return self._metadata[model]

    def _model(self, model: str):
        with self._lock:
            if model not in self._loaded:
                self._loaded[model] = load_saved_model(self._dir(model))
            return self._loaded[model]

    def signature(self, model: str, signature: str):
        loaded = self._model(model)
        if signature not in loaded.signatures:
            raise FacemathError(f"{self._dir(model)}: no signature {signature!r} (has {sorted(loaded.signatures)})")
        return loaded.signatures[signature]

    def call(self, model, signature, inputs, outputs=None):
        import tensorflow as tf

        fn = self.signature(model, signature)
        out = fn(**{k: tf.convert_to_tensor(v, tf.float32) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items() if outputs is None or k in outputs}

    def differentiable_decoder(self, model: str = S.GENERATOR):
        fn = self.signature(model, S.DEFAULT)
        return lambda z: fn(z=z)[S.IMAGES]

    def differentiable_encoder(self, decoder: str = S.GENERATOR):
        encoder = S.ENCODER_OF[decoder]
        fn = self.signature(encoder, S.DEFAULT)
        if encoder in S.VARIATIONAL_ENCODERS:  # the mean of z
            return lambda images: fn(images=images)[S.Z_MEAN]
        return lambda images: fn(images=images)[S.Z]

    def differentiable_discriminator(self, model: str = S.DISCRIMINATOR):
        fn = self.signature(model, S.DEFAULT)
        return lambda images: fn(images=images)[S.LOGITS]
