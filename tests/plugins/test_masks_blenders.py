import numpy as np
import pytest
from PIL import Image

from facemath_core.base.errors import FacemathError
from facemath_core.host.manager import load_registry

REGISTRY = load_registry(builtins_only=True)  # independent of whatever else is installed


def mask(name, shape=(16, 16), **params):
    return REGISTRY.get("mask", name).function(shape, np.random.default_rng(0), "face.png", **params)


def test_masks_hide_what_they_say():
    assert mask("full").min() == 1
    center = mask("center")
    assert center[4:12, 4:12].max() == 0 and center.sum() == 256 - 64
    assert mask("left")[:, :8].max() == 0 and mask("left")[:, 8:].min() == 1
    assert mask("right")[:, 8:].max() == 0 and mask("right")[:, :8].min() == 1
    assert mask("top")[:8].max() == 0 and mask("top")[8:].min() == 1
    assert mask("bottom")[8:].max() == 0 and mask("bottom")[:8].min() == 1
    assert mask("grid").sum() == 16 and mask("grid")[0, 0] == 1 and mask("grid")[1, 1] == 0
    assert mask("lowres").max() == 0
    random = mask("random", shape=(100, 100), fraction=0.3)
    assert abs((1 - random).mean() - 0.3) < 0.03
    np.testing.assert_array_equal(random, mask("random", shape=(100, 100), fraction=0.3))  # seeded


def test_file_masks(tmp_path):
    image = np.zeros((16, 16), np.uint8)
    image[:, :4] = 255
    Image.fromarray(image).save(tmp_path / "face.png")
    loaded = mask("file", dir=str(tmp_path))
    assert loaded[:, :4].min() == 1 and loaded[:, 4:].max() == 0
    with pytest.raises(FacemathError, match="mask file .*other.png for image other.png does not exist"):
        REGISTRY.get("mask", "file").function((16, 16), None, "other.png", dir=str(tmp_path))
    with pytest.raises(FacemathError, match="is 16x16, the image is 32x32"):
        REGISTRY.get("mask", "file").function((32, 32), None, "face.png", dir=str(tmp_path))


def test_overlay_keeps_known_pixels():
    rng = np.random.default_rng(0)
    target, generated = rng.uniform(-1, 1, (2, 16, 16, 3))
    m = mask("center")
    out = REGISTRY.get("blender", "overlay").function(target, generated, m)
    np.testing.assert_array_equal(out[m > 0], target[m > 0])
    np.testing.assert_array_equal(out[m == 0], generated[m == 0])


def test_poisson_is_exact_on_known_pixels_and_seamless():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    target = np.stack([xx, yy, xx * yy], axis=2) * 1.6 - 0.8  # smooth image
    # G(z) has the same detail but a brightness offset: a plain overlay leaves a visible seam.
    generated = target + 0.5 + rng.normal(0, 0.01, target.shape)
    m = mask("center", shape=(32, 32))
    out = REGISTRY.get("blender", "poisson").function(target, generated, m)
    np.testing.assert_array_equal(out[m > 0], target[m > 0])
    overlay = REGISTRY.get("blender", "overlay").function(target, generated, m)

    def seam(image):  # the largest jump across the hole's border
        return max(np.abs(image[7, 8:24] - image[8, 8:24]).max(), np.abs(image[8:24, 7] - image[8:24, 8]).max())

    assert seam(out) < 0.1 < seam(overlay)
    # Inside, the gradients follow G(z): the offset is removed, the detail kept.
    assert np.abs(out[12:20, 12:20] - target[12:20, 12:20]).max() < 0.05


def test_poisson_edge_cases():
    target, generated = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    poisson = REGISTRY.get("blender", "poisson").function
    np.testing.assert_array_equal(poisson(target, generated, np.ones((4, 4))), target)
    np.testing.assert_array_equal(poisson(target, generated, np.zeros((4, 4))), generated)


@pytest.mark.parametrize("name", [n for n in REGISTRY.names("mask") if n != "file"])
def test_every_builtin_mask_passes_the_run_time_contract(name):
    from facemath_core.host.contracts import make_mask

    component = REGISTRY.get("mask", name)
    out = make_mask(component, dict(component.defaults), (16, 16), np.random.default_rng(0), "face.png")
    np.testing.assert_array_equal(out, mask(name))


@pytest.mark.parametrize("name", REGISTRY.names("blender"))
def test_every_builtin_blender_passes_the_run_time_contract(name):
    from facemath_core.host.contracts import check_blender

    check_blender(REGISTRY.get("blender", name), {}, 16)


def test_the_mask_contract_refuses_a_wrong_shape_and_range():
    from facemath_core.base.errors import PluginError
    from facemath_core.host.components import Mask
    from facemath_core.host.contracts import make_mask

    rng = np.random.default_rng(0)
    wide = Mask("wide", "h", lambda shape, rng, image_name: np.ones((shape[0], shape[1] + 1)), provider="test 1")
    with pytest.raises(PluginError, match=r"mask 'wide' \(test 1\) returned shape \(16, 17\) for a.png, expected"):
        make_mask(wide, {}, (16, 16), rng, "a.png")
    signed = Mask("signed", "h", lambda shape, rng, image_name: -np.ones(shape), provider="test 1")
    with pytest.raises(PluginError, match=r"outside \[0, 1\] for a.png \(min -1, max -1\)"):
        make_mask(signed, {}, (16, 16), rng, "a.png")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [("center", {"scale": 0.5}, "scale 0.5"), ("grid", {"step": 0}, "step 0"), ("random", {"fraction": 1.5}, "1.5")],
)
def test_mask_parameters_outside_their_range_are_refused(name, params, message):
    # center(scale=0.5) would hide nothing, grid(step=0) is no grid, a fraction is a probability.
    with pytest.raises(ValueError, match=message):
        mask(name, **params)
