"""Built-in optimizers of z: Keras 3 optimizers with the settings of the projection literature."""

from __future__ import annotations

from facemath_core import Optimizer, Param, hookimpl

LR = Param(0.01, gt=0, help="Learning rate.")


def adam(lr: float = 0.01, beta_1: float = 0.9, beta_2: float = 0.999):
    """Adam (Amos 2016 projects with lr 0.01)."""
    import keras

    return keras.optimizers.Adam(learning_rate=float(lr), beta_1=float(beta_1), beta_2=float(beta_2))


def momentum(lr: float = 0.01, momentum: float = 0.9):
    """Nesterov momentum descent, the update of Amos' original dcgan-completion (with the clip constraint)."""
    import keras

    return keras.optimizers.SGD(learning_rate=float(lr), momentum=float(momentum), nesterov=True)


def sgd(lr: float = 0.01):
    """Plain gradient descent."""
    import keras

    return keras.optimizers.SGD(learning_rate=float(lr))


@hookimpl
def facemath_optimizers():
    return [
        Optimizer(
            "adam",
            "Adam.",
            adam,
            {
                "lr": LR,
                "beta_1": Param(0.9, ge=0, lt=1, help="Decay of the first moment."),
                "beta_2": Param(0.999, ge=0, lt=1, help="Decay of the second moment."),
            },
        ),
        Optimizer(
            "momentum",
            "Nesterov momentum descent (Amos' dcgan-completion update).",
            momentum,
            {"lr": LR, "momentum": Param(0.9, ge=0, lt=1, help="Share of the last update kept.")},
        ),
        Optimizer("sgd", "Plain gradient descent.", sgd, {"lr": LR}),
    ]
