"""`--param` for operators in `math`, `analogy` and `interpolate`: typed and checked by the schema before any
work, and passed to the operator on every call (known answers)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from facemath_core import Operator, Param
from facemath_core.host.contracts import interpolate
from facemath_core.latent.latents import load_latents
from facemath_core.testing import run, tiny_faces

OPERATORS = """
    import numpy as np
    from facemath_core import Operator, Param, hookimpl

    def scale(v, k=2.0):
        return np.asarray(v) * k

    def bend(a, b, t, power=1):
        return a + (t ** power) * (b - a)

    @hookimpl
    def facemath_operators():
        return [
            Operator("scale", "v * k.", scale, {"k": Param(2.0, ge=-10, le=10)}, arity=1),
            Operator("bend", "a to b along t ** power.", bend, {"power": Param(1, ge=1)}, arity=3),
        ]
"""


@pytest.fixture(scope="module")
def setup(kit_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("operators")
    plugin = root / "operators.py"
    plugin.write_text(textwrap.dedent(OPERATORS))
    faces = tiny_faces(root / "faces", 3)
    out = root / "projected"
    result = run("project", *sorted((faces / "img_align_celeba").glob("*.png")), "--models", kit_models, "--steps", 1,
                 "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    return plugin, out / "latents.npz"


def test_math_passes_the_parameter_to_the_operator(setup, kit_models, tmp_path):
    plugin, latents = setup
    faces = load_latents(latents)
    for k, expected in ((None, 2.0), ("-3", -3.0)):
        extra = ["--param", f"scale.k={k}"] if k else []
        out = tmp_path / f"k{k}"
        result = run("--plugin", plugin, "math", "scale(000002)", "--latents", latents, "--models", kit_models,
                     "-o", out, *extra)  # fmt: skip
        assert result.code == 0, result.stderr
        z = load_latents(out / "latents.npz").z[0]
        np.testing.assert_allclose(z, expected * faces.z[faces.names.index("000002.png")], rtol=1e-6)


def test_analogy_takes_operator_parameters(setup, kit_models, tmp_path):
    plugin, latents = setup
    out = tmp_path / "j.png"
    result = run("--plugin", plugin, "analogy", "scale(000001)", "000002", "000003", "--latents", latents,
                 "--models", kit_models, "--size", 2, "-o", out, "--param", "scale.k=0.5")  # fmt: skip
    assert result.code == 0, result.stderr
    assert out.is_file()
    refused = run("--plugin", plugin, "analogy", "scale(000001)", "000002", "000003", "--latents", latents,
                  "--models", kit_models, "-o", tmp_path / "x.png", "--param", "scale.k=11")  # fmt: skip
    assert refused.code == 1 and not (tmp_path / "x.png").exists()
    assert (
        refused.error
        == f"--param scale.k=11: k of operator 'scale' (--plugin {plugin}) must be a number >= -10 and <= 10"
    )


def test_interpolate_passes_the_parameter_along_the_path(setup, kit_models, tmp_path):
    plugin, latents = setup
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    bend = Operator("bend", "h", lambda a, b, t, power=1: a + (t**power) * (b - a), {"power": Param(1, ge=1)}, arity=3)
    np.testing.assert_allclose(interpolate(bend, a, b, [0.5], {"power": 2})[0], [0.25, 0.25])  # 0.5 ** 2
    np.testing.assert_allclose(interpolate(bend, a, b, [0.5])[0], [0.5, 0.5])  # the default
    ok = run("--plugin", plugin, "interpolate", "000001", "000002", "--latents", latents, "--models", kit_models,
             "--method", "bend", "--param", "bend.power=3", "--frames", 3, "-o", tmp_path / "i.png")  # fmt: skip
    assert ok.code == 0, ok.stderr
    wrong = run("--plugin", plugin, "interpolate", "000001", "000002", "--latents", latents, "--models", kit_models,
                "--method", "bend", "--param", "bend.power=half", "-o", tmp_path / "j.png")  # fmt: skip
    assert wrong.code == 1 and not (tmp_path / "j.png").exists()
    assert (
        wrong.error == f"--param bend.power=half: power of operator 'bend' (--plugin {plugin}) is a whole number >= 1"
    )
