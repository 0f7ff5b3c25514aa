"""The contract between the model classes (GAN, VAE, oracle) and `training.train`: one base class.

A model kind is a Keras model with its own `train_step` (keras-io's dcgan_overriding_train_step.py, vae.py). What
the training driver needs besides that (its networks and optimizers for checkpoints, the step counter, the data
pipeline, a sample grid, a summary for run.json) is declared here once, with the defaults most kinds share.
"""

from __future__ import annotations

import keras

from facemath_core.architectures import ArchConfig


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
        """One gradient step on `variables` down `loss`, recorded by `tape`."""
        optimizer = optimizer or self.optimizer
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    def report(self, *updates) -> dict:
        """Update each tracker (in `trackers` order) with its value, or its tuple of arguments; Keras' logs."""
        for tracker, update in zip(self.trackers, updates, strict=True):
            tracker.update_state(*(update if isinstance(update, tuple) else (update,)))
        return {m.name: m.result() for m in self.trackers}

    # --- the hooks training.train drives every model kind through --------------------------------------------

    @property
    def step_counter(self):
        """The variable that counts training steps (it is checkpointed with its optimizer)."""
        return self.optimizer.iterations

    def prepare(self, images, labels, options) -> None:
        """Fix the inputs of the sample grid, before training starts."""

    def dataset(self, images, labels, options):
        """The endless, seeded training pipeline: batch k is the same in a resumed run as in an uninterrupted one."""
        from facemath_core.dataset import make_dataset

        labels = labels if self.uses_labels else None
        return make_dataset(images, options.batch_size, options.seed, labels=labels).repeat()

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
