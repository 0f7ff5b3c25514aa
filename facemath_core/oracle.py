"""The attribute oracle: a small multi-label CNN classifier, trained with its own `train_step`.

It is the judge of reconstructions and arithmetic, so its held-out accuracy per attribute is part of every run
record (`held_out_accuracy`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from facemath_core.architectures import ArchConfig, build_oracle


class Oracle(keras.Model):
    def __init__(self, cfg: ArchConfig, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.classifier = build_oracle(cfg)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)
        self.seed_generator = keras.random.SeedGenerator(11)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def train_step(self, data):
        images, labels = data
        # Light augmentation (brightness jitter, a little noise) so the judge does not key on exact pixel values
        # and stays sound on generated images.
        images = images + keras.random.uniform((tf.shape(images)[0], 1, 1, 1), -0.1, 0.1, seed=self.seed_generator)
        images = images + 0.03 * keras.random.normal(tf.shape(images), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            logits = self.classifier(images, training=True)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(labels, logits, from_logits=True))
        variables = self.classifier.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

    # The hooks training.train drives every model kind through.

    @property
    def step_counter(self):
        return self.optimizer.iterations

    def prepare(self, images, labels, options):
        pass

    def dataset(self, images, labels, options):
        from facemath_core.dataset import make_dataset

        return make_dataset(images, options.batch_size, options.seed, labels=labels).repeat()

    def build_for_restore(self):
        self.optimizer.build(self.classifier.trainable_variables)

    def sample_grid_images(self):
        return None

    def predict_attributes(self, images_unit: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return np.concatenate(
            [
                self.classifier(images_unit[i : i + batch_size], training=False).numpy()
                for i in range(0, len(images_unit), batch_size)
            ]
        )

    def summary_record(self, data_dir: str, options) -> dict:
        """Per-attribute accuracy on the held-out split of the training folder."""
        from facemath_core.dataset import load_folder_images, open_faces
        from facemath_core.images import to_unit

        held_out = open_faces(data_dir).split("held-out")
        if not held_out.paths or held_out.attributes is None:
            return {}
        logits = self.predict_attributes(to_unit(load_folder_images(held_out, self.cfg.image_size)))
        correct = (logits > 0) == (held_out.attributes > 0)
        return {
            "held_out_images": len(held_out.paths),
            "held_out_accuracy": {name: float(correct[:, i].mean()) for i, name in enumerate(held_out.attribute_names)},
        }

    def checkpoint_objects(self) -> dict:
        return {"classifier": self.classifier, "optimizer": self.optimizer}
