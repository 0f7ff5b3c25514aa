"""The attribute oracle: a small multi-label CNN classifier, trained with its own `train_step`.

It is the judge of reconstructions and arithmetic, so its held-out accuracy per attribute is part of every run
record (`held_out_accuracy`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facemath_core.base import signatures as S
from facemath_core.data.images import to_unit
from facemath_core.data.pipeline import load_split
from facemath_core.models.architectures import ArchConfig, build_oracle
from facemath_core.models.trainable import TrainableModel


class Oracle(TrainableModel):
    uses_labels = True

    def __init__(self, cfg: ArchConfig, seed: int = 0, **kwargs):
        super().__init__(cfg, seed, **kwargs)
        self.classifier = build_oracle(cfg)
        self.trackers = [
            keras.metrics.Mean(name="loss"),
            keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
        ]

    def networks(self):
        return {"classifier": self.classifier}

    def train_step(self, data):
        images, labels = data
        # Light augmentation (brightness jitter, a little noise) so the judge does not key on exact pixel values
        # and stays sound on generated images.
        jitter = self.replica_noise(
            lambda s: keras.random.uniform(s, -0.1, 0.1, seed=self.seed_generator), (tf.shape(images)[0], 1, 1, 1)
        )
        noise = self.replica_noise(lambda s: keras.random.normal(s, seed=self.seed_generator), tf.shape(images))
        images = images + jitter + 0.03 * noise
        with tf.GradientTape() as tape:
            logits = self.classifier(images, training=True)[S.ATTRIBUTE_LOGITS]
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(labels, logits, from_logits=True))
        self.descend(tape, loss, self.classifier.trainable_variables)
        return self.report(loss, (labels, logits))

    # The hooks training.train drives every model kind through (the rest are TrainableModel's defaults).

    def predict_attributes(self, images_unit: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.concatenate(
            [
                self.classifier(images_unit[i : i + batch_size], training=False)[S.ATTRIBUTE_LOGITS].numpy()
                for i in range(0, len(images_unit), batch_size)
            ]
        )

    def summary_record(self, data_dir: str, options) -> dict:
        """Per-attribute accuracy on the held-out split of the training folder."""

        held_out = load_split(data_dir, self.cfg.image_size, "held-out")  # a face folder or TFRecord shards
        if not held_out.names or held_out.attributes is None:
            return {}
        logits = self.predict_attributes(to_unit(held_out.images))
        correct = (logits > 0) == (held_out.attributes > 0)
        return {
            "held_out_images": len(held_out.names),
            "held_out_accuracy": {name: float(correct[:, i].mean()) for i, name in enumerate(held_out.attribute_names)},
        }
