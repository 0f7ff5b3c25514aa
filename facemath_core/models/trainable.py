"""The contract between the model classes (GAN, VAE, oracle) and `training.train`: one base class.

A model kind is a Keras model with its own `train_step` (keras-io's dcgan_overriding_train_step.py, vae.py). What
the training driver needs besides that (its networks and optimizers for checkpoints, the step counter, the data
pipeline, a sample grid, a summary for run.json) is declared here once, with the defaults most kinds share.
"""

from __future__ import annotations

import keras

from facemath_core.data.pipeline import make_dataset
from facemath_core.models.architectures import ArchConfig


def _multi_worker() -> bool:
    import tensorflow as tf

    return isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)


class TrainableModel(keras.Model):
    """A model `training.train` can drive: subclasses build their networks and trackers and write `train_step`.

    Randomness inside the train step (sampled z, the reparameterisation noise, augmentation) is drawn from
    `seed_generator`, seeded by the run's --seed; its state is checkpointed with the weights, so a resumed run
    draws the noise the uninterrupted run would have drawn.
    """

    uses_labels = False  # whether the data pipeline yields (images, labels) rather than images

    def __init__(self, cfg: ArchConfig, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers: list[keras.metrics.Metric] = []

    # --- what a subclass declares -------------------------------------------------------------------------

    def networks(self) -> dict[str, keras.Model]:
        """The trained networks by checkpoint name; export restores them by the same names."""
        raise NotImplementedError

    def optimized(self) -> dict[str, tuple[keras.optimizers.Optimizer, list]]:
        """Optimizers by checkpoint name, each with the variables it updates. Default: one `compile` optimizer
        over every network."""
        variables = [v for network in self.networks().values() for v in network.trainable_variables]
        return {"optimizer": (self.optimizer, variables)}

    # --- used by train_step --------------------------------------------------------------------------------

    @property
    def metrics(self):
        return self.trackers

    def descend(self, tape, loss, variables, optimizer=None) -> None:
        """One gradient step on `variables` down `loss` (a mean over this replica's batch), recorded by `tape`.

        Under a tf.distribute strategy the optimizer sums the replicas' gradients, so each replica's mean is
        divided by the number of replicas: with equal replica batches (training checks that the global batch
        divides) that is tf.nn.compute_average_loss, the sum over the replica's examples / the global batch.
        """
        optimizer = optimizer or self.optimizer
        self.step_optimizer(optimizer, self.loss_gradients(tape, loss, variables, optimizer), variables)

    def loss_gradients(self, tape, loss, variables, optimizer):
        """`descend`'s first half: the gradients of `loss` for `variables`, scaled as `descend` says. A step that
        updates several networks from one forward pass (the VAE-GAN's) takes every gradient before applying any
        (with a persistent tape)."""
        import tensorflow as tf

        with tape:
            loss = tf.cast(loss, tf.float32) / tf.distribute.get_replica_context().num_replicas_in_sync
            loss = optimizer.scale_loss(loss)  # --mixed-precision: times the loss scale (else unchanged)
        return tape.gradient(loss, variables)

    def step_optimizer(self, optimizer, gradients, variables) -> None:
        """`descend`'s second half: one optimizer step."""
        import tensorflow as tf

        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # A step whose scaled gradients overflowed is skipped (and the scale halved) without counting it, but
            # the run's step counter must count every step, as Keras 2's LossScaleOptimizer did.
            skipped = tf.logical_not(optimizer.check_finite(gradients))
            optimizer.iterations.assign_add(tf.cast(skipped, optimizer.iterations.dtype))

    def replica_noise(self, draw, shape):
        """`draw(shape)` for this replica's rows of the global batch (`shape[0]` is the replica's batch).

        Every replica draws the whole global batch's noise from the same seed state and keeps its own rows, so R
        replicas together use exactly the noise one device would, not R copies of one replica's noise.
        """
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        if replicas == 1:
            return draw(shape)
        shape = tf.convert_to_tensor(shape)
        rows = shape[0]
        noise = draw(tf.concat([[rows * replicas], shape[1:]], 0))
        start = tf.cast(context.replica_id_in_sync_group, rows.dtype) * rows
        return noise[start : start + rows]

    def report(self, *updates) -> dict:
        """Update each tracker (in `trackers` order) with its value, or its tuple of arguments; Keras' logs."""
        for tracker, update in zip(self.trackers, updates, strict=True):
            tracker.update_state(*(update if isinstance(update, tuple) else (update,)))
        logs = {m.name: m.result() for m in self.trackers}
        if _multi_worker():
            # Keras reduces a multi-worker step's logs with strategy.reduce(MEAN, axis=0), which needs a batch axis.
            logs = {name: value[None] for name, value in logs.items()}
        return logs

    # --- the hooks training.train drives every model kind through --------------------------------------------

    @property
    def step_counter(self):
        """The variable that counts training steps (it is checkpointed with its optimizer)."""
        return self.optimizer.iterations

    def prepare(self, images, labels, options) -> None:
        """Fix the inputs of the sample grid, before training starts."""

    def dataset(self, images, labels, options):
        """The endless, seeded training pipeline: batch k is the same in a resumed run as in an uninterrupted one."""

        labels = labels if self.uses_labels else None
        return make_dataset(images, options.batch_size, options.seed, labels=labels, epochs=None)

    def build_for_restore(self) -> None:
        """Create the optimizers' slots, so that a checkpoint restores them too."""
        for optimizer, variables in self.optimized().values():
            optimizer.build(variables)

    def checkpoint_objects(self) -> dict:
        """Everything a resumed run needs: networks, optimizers and the state of every source of noise."""
        optimizers = {name: optimizer for name, (optimizer, _) in self.optimized().items()}
        return {**self.networks(), **optimizers, **self.noise_states()}

    def noise_states(self) -> dict:
        """The model's seed generator and those of layers that draw noise (Dropout), which Keras leaves out of
        a network's checkpoint."""
        states = {"seed_generator": self.seed_generator.state}
        for name, network in self.networks().items():
            layer_states = [v for v in network.non_trainable_variables if v.path.endswith("seed_generator_state")]
            states.update({f"{name}_noise_{i}": state for i, state in enumerate(layer_states)})
        return states

    def sample_grid_images(self):
        """Images (in [-1, 1]) for the periodic sample grid, or None for a kind without pictures."""
        return None

    def summary_record(self, data_dir: str, options) -> dict:
        """What the kind adds to run.json when training stops."""
        return {}
