"""A plugin author's break-it cases (issue 29), from an installed distribution as users get plugins: each is one
`error:` line naming the component, its provider and version, exit 1, before any work (nothing written).

The plugin is `facemath-breakit 0.3.1`, installed by the test into a folder on sys.path (tests/host/distributions.py)
and found through its entry point `breakit`, as pip would leave it.
"""

from __future__ import annotations

import pytest

from facemath_core.base.version import __version__
from facemath_core.testing import run, tiny_faces

from ..support import snapshot
from .distributions import Site

P = "facemath-breakit 0.3.1"
DISABLE = "disable it with FACEMATH_DISABLED_PLUGINS=breakit (or uninstall facemath-breakit)"
HEADER = """
    import numpy as np
    import tensorflow as tf
    from facemath_core import LossTerm, Mask, Operator, Optimizer, Param, hookimpl
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = Site(tmp_path / "site", monkeypatch)
    yield site
    site.forget()


def breakit(site: Site, body: str) -> None:
    site.install("facemath-breakit", "0.3.1", {"breakit_plugin": HEADER + body}, {"breakit": "breakit_plugin"})


def loss(function: str, defaults: str = "{}") -> str:
    return f"""
    {function}

    @hookimpl
    def facemath_loss_terms():
        return [LossTerm("bad", "A broken term.", bad, {defaults})]
"""


def optimizer(body: str) -> str:
    return f"""
    {body}

    @hookimpl
    def facemath_optimizers():
        return [Optimizer("bad", "A broken optimizer.", make, {{"lr": 0.1}})]
"""


APPLY_RAISES = """
class Broken:
    def __init__(self, lr):
        import keras
        self.inner = keras.optimizers.SGD(lr)

    @property
    def variables(self):
        return self.inner.variables

    def build(self, variables):
        self.inner.build(variables)

    def apply_gradients(self, pairs):
        raise TypeError("apply_gradients() takes 2 positional arguments but 3 were given")

def make(lr=0.1):
    return Broken(lr)
"""

# case -> (plugin body, command-line arguments after the model source, the error line without `error: `)
PROJECT_CASES = {
    "wrong shape": (
        loss("def bad(target, generated, mask, disc_logits):\n        return generated[:, 0, 0, :]"),
        ["-l", "bad"],
        f"loss 'bad' ({P}) returned shape (2, 3) for a batch of 2, expected a float tensor of shape (2,): one value "
        f"per image",
    ),
    "raises": (
        loss("def bad(target, generated, mask, disc_logits):\n        raise RuntimeError('boom')"),
        ["-l", "bad"],
        f"loss 'bad' ({P}) failed on a check batch: RuntimeError: boom",
    ),
    "NaN": (
        loss(
            "def bad(target, generated, mask, disc_logits):\n"
            "        return tf.reduce_sum(generated, [1, 2, 3]) * np.nan"
        ),
        ["-l", "bad"],
        f"loss 'bad' ({P}) returned NaN for every image of a check batch of ordinary images",
    ),
    "numpy inside": (
        loss(
            "def bad(target, generated, mask, disc_logits):\n"
            "        return tf.constant(generated.numpy().sum((1, 2, 3)))"
        ),
        ["-l", "bad"],
        f"loss 'bad' ({P}) failed on a check batch: AttributeError: 'SymbolicTensor' object has no attribute 'numpy' "
        f"(this runs inside tf.function: use TensorFlow ops, not .numpy() or Python conditions on tensors)",
    ),
    "bad optimizer API": (
        optimizer("def make(lr=0.1):\n        return 'adam'"),
        ["--optimizer", "bad"],
        f"optimizer 'bad' ({P}) returned str 'adam', expected a Keras optimizer (an object with apply_gradients, "
        f"build and variables)",
    ),
    "apply_gradients raising": (
        optimizer(APPLY_RAISES.replace("\n", "\n    ")),
        ["--optimizer", "bad"],
        f"optimizer 'bad' ({P}) failed applying a check gradient: TypeError: apply_gradients() takes 2 positional "
        f"arguments but 3 were given",
    ),
    "wrong --param type": (
        loss(
            "def bad(target, generated, mask, disc_logits, scale=1.0):\n"
            "        return scale * tf.reduce_sum(tf.abs(generated - target), [1, 2, 3])",
            '{"scale": 1.0}',
        ),
        ["-l", "bad", "--param", "bad.scale=abc"],
        f"--param bad.scale=abc: scale of loss 'bad' ({P}) is a number",
    ),
    "bad choice": (
        loss(
            "def bad(target, generated, mask, disc_logits, form='a'):\n"
            "        return tf.reduce_sum(tf.abs(generated - target), [1, 2, 3])",
            '{"form": Param("a", choices=("a", "b"))}',
        ),
        ["-l", "bad", "--param", "bad.form=c"],
        f"--param bad.form=c: form of loss 'bad' ({P}) must be one of a, b",
    ),
    "out of range": (
        loss(
            "def bad(target, generated, mask, disc_logits, scale=1.0):\n"
            "        return scale * tf.reduce_sum(tf.abs(generated - target), [1, 2, 3])",
            '{"scale": Param(1.0, gt=0)}',
        ),
        ["-l", "bad", "--param", "bad.scale=0"],
        f"--param bad.scale=0: scale of loss 'bad' ({P}) must be a number > 0",
    ),
    "signature mismatch": (
        loss("def bad(target, generated):\n        return tf.reduce_sum(generated, [1, 2, 3])"),
        [],
        f"loss 'bad' ({P}): bad(target, generated) cannot be called as function(target, generated, mask, "
        f"disc_logits, **params) (too many positional arguments); {DISABLE}",
    ),
    "defaults mismatch": (
        loss(
            "def bad(target, generated, mask, disc_logits):\n        return tf.reduce_sum(generated, [1, 2, 3])",
            '{"scale": 1.0}',
        ),
        [],
        f"loss 'bad' ({P}): bad(target, generated, mask, disc_logits) cannot be called as function(target, generated, "
        f"mask, disc_logits, **params) (got an unexpected keyword argument 'scale'); {DISABLE}",
    ),
    "default outside its own range": (
        loss(
            "def bad(target, generated, mask, disc_logits, scale=0.0):\n"
            "        return tf.reduce_sum(generated, [1, 2, 3])",
            '{"scale": Param(0.0, gt=0)}',
        ),
        [],
        f"loss 'bad' ({P}): default 0.0 of scale is not a number > 0; {DISABLE}",
    ),
    "failed import": (
        "    import no_such_dependency_of_breakit\n",
        [],
        f"plugin breakit ({P}): failed to import breakit_plugin (ModuleNotFoundError: No module named "
        f"'no_such_dependency_of_breakit'); {DISABLE}",
    ),
    "duplicate names": (
        """
    @hookimpl
    def facemath_masks():
        return [Mask("center", "Another center.", lambda shape, rng, image_name: np.ones(shape, np.float32))]
""",
        [],
        f"two plugins provide the mask 'center': facemath {__version__} (entry point builtin-masks) and {P} (entry "
        f"point breakit); uninstall or block one with FACEMATH_DISABLED_PLUGINS=builtin-masks or "
        f"FACEMATH_DISABLED_PLUGINS=breakit",
    ),
    "hook raises": (
        """
    @hookimpl
    def facemath_masks():
        return 1 / 0
""",
        [],
        f"plugin breakit ({P}): facemath_masks() failed: ZeroDivisionError: division by zero; {DISABLE}",
    ),
    "hook returns one component": (
        """
    @hookimpl
    def facemath_masks():
        return Mask("bad", "Not in a list.", lambda shape, rng, image_name: np.ones(shape, np.float32))
""",
        [],
        f"plugin breakit ({P}): facemath_masks() returned Mask 'bad', expected a list of Mask (return [Mask(...)]); "
        f"{DISABLE}",
    ),
}


def one_line(result) -> str:
    """The error contract: exit 1, exactly one `error:` line, nothing else but warnings, no traceback."""
    assert result.code == 1, (result.code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and all(line.startswith(("error: ", "warning: ")) for line in lines), result.stderr
    return errors[0].removeprefix("error: ")


@pytest.mark.parametrize("case", sorted(PROJECT_CASES))
def test_break_it_in_a_projection(case, installed, kit_models, tmp_path):
    body, args, message = PROJECT_CASES[case]
    breakit(installed, body)
    images = sorted((tiny_faces(tmp_path / "synth", 2) / "img_align_celeba").glob("*.png"))
    before = snapshot(tmp_path)
    result = run("project", *images, "--models", kit_models, "--steps", 2, "-o", tmp_path / "out", *args)
    assert one_line(result) == message
    assert snapshot(tmp_path) == before  # before any work: no result folder, no .partial, nothing else


MATH_CASES = {
    "wrong arity": (
        'Operator("twice", "2 v", lambda v: 2 * v, arity=1)',
        "twice(000001, 000002)",
        f"expression column 1: operator 'twice' ({P}) takes 1 argument, got 2",
    ),
    "operator raises": (
        'Operator("boom", "Raises.", lambda v: 1 / 0, arity=1)',
        "000002 + boom(000001)",
        f"expression column 10: operator 'boom' ({P}) failed: ZeroDivisionError: division by zero",
    ),
    "operator returns no latent": (
        'Operator("short", "Too short.", lambda v: v[:3], arity=1)',
        "short(000001)",
        f"expression column 1: operator 'short' ({P}) returned shape (3,), expected a finite latent of shape (8,)",
    ),
    "operator returns NaN": (
        'Operator("nan", "NaN.", lambda v: v * np.nan, arity=1)',
        "nan(000001)",
        f"expression column 1: operator 'nan' ({P}) returned NaN, expected a finite latent of shape (8,)",
    ),
    "operator parameter of the wrong type": (
        'Operator("scale", "v * k.", lambda v, k=2.0: v * k, {"k": 2.0}, arity=1)',
        "scale(000001) --param scale.k=two",
        f"--param scale.k=two: k of operator 'scale' ({P}) is a number",
    ),
}


@pytest.fixture(scope="module")
def face_latents(kit_models, tmp_path_factory):
    faces = tiny_faces(tmp_path_factory.mktemp("faces") / "faces", 3)
    out = tmp_path_factory.mktemp("latents") / "faces"
    result = run("project", *sorted((faces / "img_align_celeba").glob("*.png")), "--models", kit_models, "-o", out,
                 "--steps", 1)  # fmt: skip
    assert result.code == 0, result.stderr
    return out / "latents.npz"


@pytest.mark.parametrize("case", sorted(MATH_CASES))
def test_break_it_in_an_expression(case, installed, kit_models, face_latents, tmp_path):
    operator, expression, message = MATH_CASES[case]
    body = f"""
    @hookimpl
    def facemath_operators():
        return [{operator}]
"""
    breakit(installed, body)
    expression, *extra = expression.split(" --param ")
    params = ["--param", extra[0]] if extra else []
    before = snapshot(tmp_path)
    result = run("math", expression, "--latents", face_latents, "--models", kit_models, "-o", tmp_path / "m", *params)
    assert one_line(result) == message
    assert snapshot(tmp_path) == before


def test_a_nan_for_one_image_at_run_time_is_one_warning_line_naming_the_provider(installed, kit_models, tmp_path):
    """Not a failure of the run: that image stops, the others go on (exit 0); the warning is one line even though
    stderr is not a terminal, and names the term with its provider and version."""
    breakit(
        installed,
        loss(
            "def bad(target, generated, mask, disc_logits):\n"
            "        value = tf.reduce_sum(tf.abs(generated - target), axis=[1, 2, 3])\n"
            "        return tf.where(tf.range(tf.shape(value)[0]) == 0, value * np.nan, value)"
        ),
    )
    images = sorted((tiny_faces(tmp_path / "synth", 3) / "img_align_celeba").glob("*.png"))
    result = run("project", *images, "--models", kit_models, "-l", "bad", "--steps", 2, "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "NaN" in line]
    assert warnings == [
        f"warning: 000001.png: the loss became NaN or infinite at step 0 (not finite: loss 'bad' ({P}) = nan); "
        f"stopped that image and kept its last finite z"
    ]
