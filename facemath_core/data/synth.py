"""Render labelled synthetic faces.

No real face data set can be downloaded where facemath is developed, so the project renders its own: shaded,
soft-edged faces whose attributes are known exactly. Every attribute feature (mouth, teeth, glasses, beard, hair,
hat) is drawn large and contrasted enough to survive a 64x64 model, because a feature that vanishes at that size can
be learned by no model and judged by no oracle.

A face is a `FaceSpec` (the ground truth) rendered by `render_face` with plain numpy. Each layer is an alpha mask
from a signed distance with a one-pixel soft edge, composited over the layers beneath it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir
from facemath_core.base.version import __version__
from facemath_core.data.folders import (
    ATTR_FILE,
    FACTORS_FILE,
    IMAGE_DIR,
    PARTITION_FILE,
    RECIPE_FILE,
    write_attribute_file,
)

# CelebA's names where CelebA has the attribute. Hair colour is one categorical choice (a face has one hair colour),
# so the four hair flags are mutually exclusive; "other" (red) sets none of them.
ATTRIBUTES: tuple[str, ...] = (
    "Smiling",
    "Mouth_Slightly_Open",
    "Eyeglasses",
    "Male",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Gray_Hair",
    "Wearing_Hat",
    "Pale_Skin",
)
BINARY_ATTRIBUTES = ("Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Male", "Bangs", "Wearing_Hat", "Pale_Skin")
HAIR_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
CONTINUOUS_FACTORS = ("yaw", "roll", "scale", "shift_x", "shift_y", "skin_tone", "light_angle", "gaze_x", "gaze_y")

DEFAULT_FREQUENCIES: dict[str, float] = {
    "Smiling": 0.5,
    "Mouth_Slightly_Open": 0.5,
    "Eyeglasses": 0.5,
    "Male": 0.5,
    "Bangs": 0.5,
    "Wearing_Hat": 0.5,
    "Pale_Skin": 0.5,
    "Black_Hair": 0.25,
    "Blond_Hair": 0.2,
    "Brown_Hair": 0.25,
    "Gray_Hair": 0.15,
}

HAIR_RGB = {
    "Black_Hair": (0.10, 0.08, 0.08),
    "Brown_Hair": (0.40, 0.24, 0.12),
    "Blond_Hair": (0.92, 0.78, 0.42),
    "Gray_Hair": (0.72, 0.72, 0.74),
    "other": (0.62, 0.20, 0.08),
}


@dataclass(frozen=True)
class FaceSpec:
    """Everything that decides one face: the binary attributes and the continuous factors."""

    attributes: dict[str, bool]
    yaw: float  # head turn, -1 (looking to image left) .. 1
    roll: float  # in-plane rotation, radians
    scale: float  # face size relative to the average
    shift_x: float  # face centre, in units of half the image
    shift_y: float
    skin_tone: float  # 0 dark .. 1 pale
    light_angle: float  # radians; 0 is light from the viewer, positive from image right
    gaze_x: float  # iris offset inside the eye, -1 .. 1
    gaze_y: float
    details: dict[str, float] = field(default_factory=dict)  # palette and style draws, for reproducibility

    def factors(self) -> dict[str, float]:
        values = asdict(self)
        return {name: float(values[name]) for name in CONTINUOUS_FACTORS}


def parse_frequencies(pairs: list[str] | None) -> dict[str, float]:
    """Turn ["Smiling=0.3", ...] into a full frequency table, refusing unknown names and bad numbers."""
    frequencies = dict(DEFAULT_FREQUENCIES)
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise FacemathError(f"--freq {pair!r}: expected NAME=FRACTION, e.g. Smiling=0.3")
        if name not in frequencies:
            raise FacemathError(f"--freq {pair!r}: unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
        try:
            fraction = float(value)
        except ValueError:
            raise FacemathError(f"--freq {pair!r}: {value!r} is not a number") from None
        if not 0.0 <= fraction <= 1.0:
            raise FacemathError(f"--freq {pair!r}: a frequency must lie in [0, 1]")
        frequencies[name] = fraction
    if sum(frequencies[h] for h in HAIR_ATTRIBUTES) > 1.0 + 1e-9:
        raise FacemathError("--freq: the hair colour frequencies add up to more than 1 (a face has one hair colour)")
    return frequencies


def parse_correlations(pairs: list[str] | None) -> dict[tuple[str, str], float]:
    """Turn ["Smiling:Male=0.5", ...] into latent correlations between binary attributes."""
    correlations: dict[tuple[str, str], float] = {}
    for pair in pairs or []:
        names, sep, value = pair.partition("=")
        first, colon, second = names.partition(":")
        if not sep or not colon:
            raise FacemathError(f"--correlate {pair!r}: expected A:B=RHO, e.g. Smiling:Male=0.5")
        for name in (first, second):
            if name not in BINARY_ATTRIBUTES:
                raise FacemathError(
                    f"--correlate {pair!r}: {name!r} is not a binary attribute; known: {', '.join(BINARY_ATTRIBUTES)}"
                )
        try:
            rho = float(value)
        except ValueError:
            raise FacemathError(f"--correlate {pair!r}: {value!r} is not a number") from None
        if not -1.0 < rho < 1.0 or first == second:
            raise FacemathError(f"--correlate {pair!r}: needs two different attributes and -1 < RHO < 1")
        correlations[(first, second)] = rho
    return correlations


class FaceSampler:
    """Draws `FaceSpec`s: binary attributes through a Gaussian copula (independent unless correlations are given)."""

    def __init__(
        self,
        frequencies: dict[str, float] | None = None,
        correlations: dict[tuple[str, str], float] | None = None,
    ):
        from scipy.stats import norm

        self.frequencies = dict(DEFAULT_FREQUENCIES if frequencies is None else frequencies)
        cov = np.eye(len(BINARY_ATTRIBUTES))
        for (a, b), rho in (correlations or {}).items():
            i, j = BINARY_ATTRIBUTES.index(a), BINARY_ATTRIBUTES.index(b)
            cov[i, j] = cov[j, i] = rho
        try:
            self._chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise FacemathError("--correlate: these correlations are not jointly possible") from None
        self._thresholds = norm.ppf([min(max(self.frequencies[a], 0.0), 1.0) for a in BINARY_ATTRIBUTES])

    def sample(self, rng: np.random.Generator) -> FaceSpec:
        latent = self._chol @ rng.standard_normal(len(BINARY_ATTRIBUTES))
        attributes = {name: bool(latent[i] < self._thresholds[i]) for i, name in enumerate(BINARY_ATTRIBUTES)}
        hair_draw, cumulative = rng.random(), 0.0
        for name in HAIR_ATTRIBUTES:
            attributes[name] = cumulative <= hair_draw < cumulative + self.frequencies[name]
            cumulative += self.frequencies[name]
        pale = attributes["Pale_Skin"]
        return FaceSpec(
            attributes={name: attributes[name] for name in ATTRIBUTES},
            yaw=float(rng.uniform(-1, 1)),
            roll=float(rng.uniform(-0.12, 0.12)),
            scale=float(rng.uniform(0.9, 1.08)),
            shift_x=float(rng.uniform(-0.05, 0.05)),
            shift_y=float(rng.uniform(-0.04, 0.04)),
            skin_tone=float(rng.uniform(0.88, 1.0) if pale else rng.uniform(0.0, 0.62)),
            light_angle=float(rng.uniform(-1.0, 1.0)),
            gaze_x=float(rng.uniform(-1, 1)),
            gaze_y=float(rng.uniform(-0.6, 0.6)),
            details={
                "bg_hue": float(rng.random()),
                "bg_hue2": float(rng.random()),
                "bg_angle": float(rng.uniform(0, 2 * math.pi)),
                "shirt_hue": float(rng.random()),
                "hat_hue": float(rng.random()),
                "iris": float(rng.random()),
                "beard_style": float(rng.random()),
                "hair_length": float(rng.random()),
                "hair_phase": float(rng.uniform(0, 2 * math.pi)),
                "noise_seed": float(rng.integers(0, 2**31 - 1)),
            },
        )


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _skin_rgb(tone: float) -> np.ndarray:
    dark = np.array([0.36, 0.22, 0.14], np.float32)
    mid = np.array([0.78, 0.56, 0.42], np.float32)
    pale = np.array([0.98, 0.86, 0.78], np.float32)
    if tone < 0.6:
        return dark + (mid - dark) * (tone / 0.6)
    return mid + (pale - mid) * min((tone - 0.6) / 0.4, 1.0)


class _Canvas:
    """An RGB float image plus the face-centred coordinate frame that layers are drawn in."""

    def __init__(self, size: int, spec: FaceSpec):
        self.size = size
        self.px = 2.0 / size  # one pixel in canvas units; soft edges are about one pixel wide
        grid = (np.arange(size, dtype=np.float32) + 0.5) * self.px - 1.0
        gx, gy = np.meshgrid(grid, grid)
        self.image_x, self.image_y = gx, gy
        # Face frame: undo shift, roll and scale so that the face is always drawn at the origin with unit size.
        cos, sin = math.cos(spec.roll), math.sin(spec.roll)
        dx, dy = gx - spec.shift_x, gy - (spec.shift_y + 0.02)
        self.x = (cos * dx + sin * dy) / spec.scale
        self.y = (-sin * dx + cos * dy) / spec.scale
        self.edge = self.px / spec.scale
        self.rgb = np.zeros((size, size, 3), np.float32)

    def alpha(self, distance: np.ndarray) -> np.ndarray:
        """Coverage of a shape from its signed distance (negative inside), with a one-pixel soft edge."""
        return np.clip(0.5 - distance / (1.2 * self.edge), 0.0, 1.0)

    def paint(self, alpha: np.ndarray, colour) -> None:
        a = alpha[..., None]
        self.rgb *= 1.0 - a
        self.rgb += a * np.asarray(colour, np.float32)


def _ellipse(x, y, cx, cy, rx, ry):
    return (np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) - 1.0) * min(rx, ry)


def _box(x, y, x0, x1, y0, y1):
    return np.maximum(np.maximum(x0 - x, x - x1), np.maximum(y0 - y, y - y1))


def render_face(spec: FaceSpec, size: int = 64) -> np.ndarray:
    """Render one face as a float32 (size, size, 3) array in [0, 1]."""
    a = spec.attributes
    d = spec.details
    c = _Canvas(size, spec)
    x, y = c.x, c.y
    male = a["Male"]
    hair_name = next((h for h in HAIR_ATTRIBUTES if a[h]), "other")
    hair = np.array(HAIR_RGB[hair_name], np.float32)
    skin = _skin_rgb(spec.skin_tone)

    # Background: a muted two-colour linear gradient in a random direction.
    t = (np.cos(d["bg_angle"]) * c.image_x + np.sin(d["bg_angle"]) * c.image_y) * 0.5 + 0.5
    bg1, bg2 = _hsv(d["bg_hue"], 0.35, 0.75), _hsv(d["bg_hue2"], 0.3, 0.45)
    c.rgb[:] = bg1 * (1 - t[..., None]) + bg2 * t[..., None]

    # Light: from the viewer's side, swung left/right by light_angle. Used for Lambert shading of round parts.
    lx, lz = math.sin(spec.light_angle), math.cos(spec.light_angle)
    light = np.array([lx * 0.8, -0.35, lz], np.float32)
    light /= np.linalg.norm(light)

    def shade(cx, cy, rx, ry):
        nx = np.clip((x - cx) / rx, -1, 1)
        ny = np.clip((y - cy) / ry, -1, 1)
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
        return (0.5 + 0.6 * lambert)[..., None]

    # Hair texture: strands as a phase-shifted sine along the head, +-10% brightness, a few pixels apart.
    strands = 1.0 + 0.10 * np.sin(x * 34.0 + 3.0 * np.sin(y * 6.0) + d["hair_phase"])[..., None]

    # Shoulders and shirt.
    shirt = _hsv(d["shirt_hue"], 0.55, 0.6)
    c.paint(c.alpha(_ellipse(x, y, 0.0, 1.22, 0.95 if male else 0.8, 0.42)), shirt)
    # Long hair (women) falls behind the head onto the shoulders.
    face_rx, face_ry = (0.45, 0.58) if male else (0.41, 0.56)
    if not male:
        length = 0.45 + 0.35 * d["hair_length"]
        back = np.minimum(_ellipse(x, y, 0.0, -0.1, 0.6, 0.72), _box(x, y, -0.6, 0.6, -0.1, length))
        alpha = c.alpha(back)
        c.rgb = c.rgb * (1 - alpha[..., None]) + alpha[..., None] * np.clip(hair * 0.82 * strands, 0, 1)
    # Neck and ears.
    c.paint(c.alpha(_box(x, y, -0.17, 0.17, 0.3, 0.95)), skin * 0.72)
    yaw_shift = 0.13 * spec.yaw  # turning the head moves the features sideways inside the outline
    for side in (-1, 1):
        ear_x = side * (face_rx + 0.02) - 0.5 * yaw_shift
        c.paint(c.alpha(_ellipse(x, y, ear_x, 0.02, 0.07, 0.12)), skin * 0.85)

    # Face: an ellipse whose lower half is squarer for men (a superellipse jaw).
    power = 3.2 if male else 2.0
    lower = y > 0
    rho = np.where(
        lower,
        (np.abs(x / face_rx) ** power + np.abs(y / face_ry) ** power) ** (1.0 / power),
        np.sqrt((x / face_rx) ** 2 + (y / face_ry) ** 2),
    )
    face_alpha = c.alpha((rho - 1.0) * face_rx)
    face_rgb = np.clip(skin * shade(-0.15 * spec.yaw, -0.05, face_rx * 1.15, face_ry * 1.15), 0, 1)
    c.rgb = c.rgb * (1 - face_alpha[..., None]) + face_alpha[..., None] * face_rgb

    # Beard or moustache (men): hair-coloured, darkened so that blond and grey beards still contrast with skin.
    fx = x - yaw_shift
    beard_rgb = np.clip(hair * 0.7 * strands, 0, 1)
    if male:
        moustache = _ellipse(fx, y, 0.0, 0.235, 0.17, 0.045)
        if d["beard_style"] < 0.6:  # full beard along the jaw, around the mouth
            jaw = np.maximum((rho - 1.0) * face_rx, 0.16 - y)
            shape = np.minimum(np.maximum(jaw, -_ellipse(fx, y, 0.0, 0.33, 0.2, 0.09) - 0.01), moustache)
            shape = np.maximum(shape, (rho - 1.0) * face_rx)
        else:  # moustache and goatee
            goatee = _ellipse(fx, y, 0.0, 0.5, 0.11, 0.09)
            shape = np.maximum(np.minimum(moustache, goatee), (rho - 1.0) * face_rx)
        alpha = c.alpha(shape) * face_alpha
        c.rgb = c.rgb * (1 - alpha[..., None]) + alpha[..., None] * beard_rgb

    # Eyes: white, an iris that follows the gaze, a pupil, and a heavy brow.
    eye_y, eye_dx = _EYE_Y, _EYE_DX
    iris_rgb = _hsv(0.08 + 0.5 * d["iris"], 0.6, 0.35)
    for side in (-1, 1):
        ex = side * eye_dx + yaw_shift
        c.paint(c.alpha(_ellipse(x, y, ex, eye_y, 0.09, 0.05)), (0.95, 0.95, 0.93))
        ix, iy = ex + 0.035 * spec.gaze_x, eye_y + 0.015 * spec.gaze_y
        eye_mask = c.alpha(_ellipse(x, y, ex, eye_y, 0.09, 0.05))
        c.paint(c.alpha(_ellipse(x, y, ix, iy, 0.042, 0.042)) * eye_mask, iris_rgb)
        c.paint(c.alpha(_ellipse(x, y, ix, iy, 0.02, 0.02)) * eye_mask, (0.03, 0.03, 0.03))
        brow = _ellipse(x, y, ex, eye_y - 0.1, 0.11, 0.028 if male else 0.02)
        c.paint(c.alpha(brow), np.clip(hair * 0.6, 0, 1))

    # Nose: a soft shadow on the side away from the light.
    nose_side = -np.sign(lx) if abs(lx) > 0.1 else 1.0
    c.paint(0.35 * c.alpha(_ellipse(x, y, yaw_shift * 1.3 + 0.035 * nose_side, 0.1, 0.028, 0.085)), skin * 0.55)

    # Mouth. A smile is a wide grin whose corners lift (flat-ish top, deeply curved bottom) and shows a row of
    # teeth; a neutral mouth is a short straight line. An open mouth shows a dark interior (below the teeth when
    # smiling). Everything is large, dark-outlined and, for the teeth, bright: a thin lip line would not survive
    # 64x64 on every skin tone.
    mx, my = yaw_shift, _MOUTH_Y
    lips = np.clip(0.5 * skin * 0.5 + 0.5 * np.array([0.42, 0.07, 0.09], np.float32), 0, 1)
    interior = np.array([0.14, 0.02, 0.04], np.float32)
    teeth_rgb = np.array([0.97, 0.96, 0.9], np.float32)
    smiling, open_mouth = a["Smiling"], a["Mouth_Slightly_Open"]
    u = x - mx
    if smiling:
        half_width = 0.22
        upper = my - 0.03 - 0.9 * u**2
        lower = my + (0.12 if open_mouth else 0.07) - 2.6 * u**2
    else:
        half_width = 0.14
        upper = my - (0.05 if open_mouth else 0.016)
        lower = my + (0.05 if open_mouth else 0.016)
    shape = np.maximum(np.maximum(upper - y, y - lower), np.abs(u) - half_width)
    c.paint(c.alpha(shape - 0.022), lips)  # lips around everything
    if smiling or open_mouth:
        c.paint(c.alpha(shape), interior)
    if smiling:
        teeth_depth = 0.045 if open_mouth else 0.2  # closed grin: teeth fill the mouth
        c.paint(c.alpha(np.maximum(shape + 0.004, y - (upper + teeth_depth))), teeth_rgb)

    # Hair on the head, with or without bangs; a hat covers the top of it.
    top = _ellipse(x, y, 0.0, -0.12, face_rx + 0.06, face_ry + 0.09)
    if a["Bangs"]:
        hairline = -0.19 + 0.025 * np.sin(x * 40.0 + d["hair_phase"])  # fringe down to the brows, ragged edge
    else:
        hairline = -0.4 - 0.12 * (1.0 - (x / face_rx) ** 2)  # a high, rounded hairline
    # Hair also frames the face at the temples: down to the ears for short (men's) hair, lower for long hair.
    side_bottom = -0.08 if male else 0.12
    sides = np.maximum(face_rx - 0.07 - np.abs(x), y - side_bottom)
    cap = np.maximum(top, np.minimum(y - hairline, sides))
    c.rgb = c.rgb * (1 - c.alpha(cap)[..., None]) + c.alpha(cap)[..., None] * np.clip(hair * strands, 0, 1)

    if a["Wearing_Hat"]:
        hat_rgb = _hsv(d["hat_hue"], 0.7, 0.55)
        crown = np.maximum(_ellipse(x, y, 0.0, -0.5, face_rx + 0.1, 0.38), y + 0.33)
        brim = _box(x, y, -face_rx - 0.2, face_rx + 0.2, -0.41, -0.31)
        c.paint(c.alpha(np.minimum(crown, brim)), hat_rgb)
        c.paint(c.alpha(brim), hat_rgb * 0.7)

    # Glasses last: thick dark frames, tinted lenses, a bridge and arms.
    if a["Eyeglasses"]:
        frame = (0.05, 0.05, 0.06)
        for side in (-1, 1):
            ex = side * eye_dx + yaw_shift
            lens = _ellipse(x, y, ex, eye_y, 0.14, 0.1)
            c.paint(0.25 * c.alpha(lens), (0.2, 0.25, 0.35))
            c.paint(c.alpha(np.abs(lens) - 0.022), frame)
            arm_x0, arm_x1 = (ex + 0.13, face_rx + 0.03) if side > 0 else (-face_rx - 0.03, ex - 0.13)
            c.paint(c.alpha(_box(x, y, arm_x0, arm_x1, eye_y - 0.03, eye_y - 0.0)), frame)
        c.paint(c.alpha(_box(x, y, yaw_shift - 0.04, yaw_shift + 0.04, eye_y - 0.03, eye_y - 0.0)), frame)

    # Sensor noise, seeded by the face so that rendering stays deterministic.
    noise_rng = np.random.default_rng(int(d["noise_seed"]))
    c.rgb += noise_rng.normal(0.0, 0.012, c.rgb.shape).astype(np.float32)
    return np.clip(c.rgb, 0.0, 1.0)


# Where `render_face` draws the five landmarks of a face (eyes, nose, mouth corners), in its face frame (the face
# at the origin with unit size, before shift, roll and scale), as functions of the spec. Kept beside the renderer:
# a change of the drawing is a change here.
LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")  # left and right as seen
_EYE_Y, _EYE_DX, _MOUTH_Y = -0.06, 0.17, 0.32


def _landmarks_in_face_frame(spec: FaceSpec) -> np.ndarray:
    """The five points as `render_face` draws them: the eyes' centres, the centre of the nose's shadow, and the
    mouth's corners (where its upper and lower edge meet the mouth's half width)."""
    yaw_shift = 0.13 * spec.yaw
    lx = math.sin(spec.light_angle)
    nose_side = -np.sign(lx) if abs(lx) > 0.1 else 1.0
    smiling, open_mouth = spec.attributes["Smiling"], spec.attributes["Mouth_Slightly_Open"]
    if smiling:
        half_width = 0.22
        upper = _MOUTH_Y - 0.03 - 0.9 * half_width**2
        lower = _MOUTH_Y + (0.12 if open_mouth else 0.07) - 2.6 * half_width**2
        corner_y = 0.5 * (upper + lower)
    else:
        half_width, corner_y = 0.14, _MOUTH_Y
    return np.array(
        [
            [-_EYE_DX + yaw_shift, _EYE_Y],
            [_EYE_DX + yaw_shift, _EYE_Y],
            [1.3 * yaw_shift + 0.035 * float(nose_side), 0.1],
            [yaw_shift - half_width, corner_y],
            [yaw_shift + half_width, corner_y],
        ],
        np.float64,
    )


def face_landmarks(spec: FaceSpec, size: int = 64) -> np.ndarray:
    """The five landmarks of the face `render_face(spec, size)` draws, (5, 2) as (x, y) in its pixels (x to the
    right, y down, the centre of the top left pixel at (0, 0)), in the order LANDMARK_NAMES gives."""
    points = _landmarks_in_face_frame(spec)
    cos, sin = math.cos(spec.roll), math.sin(spec.roll)
    # The canvas maps image to face frame by undoing shift, roll and scale (_Canvas); this is its inverse.
    gx = spec.shift_x + spec.scale * (cos * points[:, 0] - sin * points[:, 1])
    gy = spec.shift_y + 0.02 + spec.scale * (sin * points[:, 0] + cos * points[:, 1])
    # Canvas coordinates run from -1 to 1 over the image; pixel i's centre is at (i + 0.5) * 2 / size - 1.
    return np.stack([(gx + 1.0) * size / 2.0 - 0.5, (gy + 1.0) * size / 2.0 - 0.5], axis=1)


def landmark_template(
    count: int,
    seed: int = 0,
    size: int = 64,
    frequencies: dict[str, float] | None = None,
    correlations: dict[tuple[str, str], float] | None = None,
    first: int = 0,
) -> np.ndarray:
    """The mean landmarks (5, 2) of faces first+1 ... first+count of `facemath data synth --seed SEED` (with those
    frequencies and correlations): the framing a model trained on them knows, as CelebA's mean aligned landmarks
    are for CelebA. Only the specs are drawn; nothing is rendered."""
    sampler = FaceSampler(frequencies, correlations)
    total = np.zeros((5, 2))
    for i in range(first, first + count):
        total += face_landmarks(sampler.sample(face_rng(seed, i)), size)
    return total / max(count, 1)


def face_rng(seed: int, index: int) -> np.random.Generator:
    """One independent stream per face, so that face i is the same whatever the count or order."""
    return np.random.default_rng([seed, index])


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_synthetic_folder(
    out,
    count: int,
    seed: int = 0,
    size: int = 64,
    frequencies: dict[str, float] | None = None,
    correlations: dict[tuple[str, str], float] | None = None,
    held_out_percent: int = 10,
    progress=None,
    flat: bool = False,
) -> None:
    """Render `count` faces into `out` in CelebA's layout, atomically.

    Writes `img_align_celeba/NNNNNN.png`, `list_attr_celeba.txt`, `list_factors_synth.txt` (the continuous
    factors) and `list_eval_partition.txt` (the last `held_out_percent` % are the held-out test partition).
    `progress(n)` is called after each face. `flat` puts the images beside the attribute file instead of in
    `img_align_celeba/` (handy for small example folders that are also passed to `facemath project`).
    """
    from pathlib import Path

    from PIL import Image

    if count < 1:
        raise FacemathError(f"--count {count}: must be at least 1")
    if not 16 <= size <= 512:
        raise FacemathError(f"--size {size}: must lie between 16 and 512 pixels")
    sampler = FaceSampler(frequencies, correlations)
    width = max(6, len(str(count)))
    files, attrs, factors = [], np.zeros((count, len(ATTRIBUTES)), np.int8), []
    first_held_out = count - (count * held_out_percent) // 100
    with atomic_dir(out) as tmp:
        image_dir = Path(tmp) if flat else Path(tmp) / IMAGE_DIR
        image_dir.mkdir(exist_ok=True)
        for i in range(count):
            spec = sampler.sample(face_rng(seed, i))
            name = f"{i + 1:0{width}d}.png"
            Image.fromarray(to_uint8(render_face(spec, size))).save(image_dir / name, compress_level=1)
            files.append(name)
            attrs[i] = [1 if spec.attributes[a] else -1 for a in ATTRIBUTES]
            factors.append([spec.factors()[f] for f in CONTINUOUS_FACTORS])
            if progress:
                progress(1)
        write_attribute_file(Path(tmp) / ATTR_FILE, files, list(ATTRIBUTES), attrs)
        write_attribute_file(Path(tmp) / FACTORS_FILE, files, list(CONTINUOUS_FACTORS), np.array(factors), fmt="{:.5f}")
        with open(Path(tmp) / PARTITION_FILE, "w") as handle:
            for i, name in enumerate(files):
                handle.write(f"{name} {2 if i >= first_held_out else 0}\n")
        recipe = {
            "command": "facemath data synth",  # the parameters of that command that made this folder
            "count": count,
            "seed": seed,
            "size": size,
            "freq": {k: v for k, v in sampler.frequencies.items() if v != DEFAULT_FREQUENCIES[k]},
            "correlate": {f"{a}:{b}": rho for (a, b), rho in (correlations or {}).items()},
            "held_out_percent": held_out_percent,
            "flat": flat,
            "facemath_version": __version__,
        }
        (Path(tmp) / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
