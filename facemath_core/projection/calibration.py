"""How well a model reconstructs the held-out faces of its own data: the quantiles of the PSNR, recorded in its
metadata (`reconstruction_psnr`) so that `project` and `encode` can say when a face is outside what the model knows
(`projection.flags.out_of_domain`: below the 1st percentile).

Generators and decoders are measured as `facemath project` runs them (its defaults: the model's own encoder as the
start, 1000 steps, the contextual loss); encoders by their round trip, D(E(x)) for a VAE's or VAE-GAN's (what
`facemath encode` reports) and G(E(x)) for a GAN's. `facemath export` calibrates what it writes on the run's
held-out faces; bench/real_photos.py calibrated the shipped models the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import known_psnr
from facemath_core.data.images import to_unit
from facemath_core.data.pipeline import load_split
from facemath_core.models.cards import rewrite_metadata
from facemath_core.models.layout import read_metadata
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
from facemath_core.projection.settings import projection_config

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
DECODERS = {S.GENERATOR: "gan", S.VAE_DECODER: "vae", S.VAEGAN_DECODER: "vaegan"}  # measured by projection
# measured by their round trip
ENCODERS = {S.GAN_ENCODER: S.GENERATOR, S.VAE_ENCODER: S.VAE_DECODER, S.VAEGAN_ENCODER: S.VAEGAN_DECODER}


def quantiles(psnr) -> dict[str, float]:
    return {f"{q:g}": round(float(np.quantile(np.asarray(psnr, np.float64), q)), 3) for q in QUANTILES}


def projection_psnr(backend, registry, family: str, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Known-pixel PSNR of `facemath project --model FAMILY` with its defaults on uint8 faces, and how it started."""
    names = [f"{i:06d}.png" for i in range(len(images))]
    run = ProjectionRun(backend, registry, projection_config(registry, model=family))
    result = run.run(JobInputs(names, names, to_unit(images), []), MemorySink(), warn=lambda line: None)
    return np.asarray(result.latents.psnr, np.float64), result.start


def encoder_psnr(backend, decoder: str, images: np.ndarray) -> np.ndarray:
    """PSNR of the encoder round trip: D(E(x)) for the VAE, G(E(x)) for the GAN encoder."""
    x = to_unit(images)
    back = backend.generate(backend.encode_z(x, decoder), decoder)
    return known_psnr(x, back, np.ones(x.shape[:3], np.float32))


def record(psnr, method: str, settings: str, data: str, source: str) -> dict:
    """The `reconstruction_psnr` field of a model's metadata."""
    return {
        "quantiles": quantiles(psnr),
        "faces": int(len(psnr)),
        "method": method,
        "settings": settings,
        "data": data,
        "unit": "dB",
        "source": source,
    }


def _base(path: Path) -> str | None:
    """The model an export is, without the family's prefix (`celeba_generator` -> `generator`)."""
    return S.base_name(str(read_metadata(path).get("model", "")))


def calibrate_export(
    backend, registry, written: list[Path], data: str | Path | None, faces: int, note: Callable[[str], None]
) -> list[str]:
    """Measure each model just exported (`written`: its version folders, the backend over their base path) on up to
    `faces` held-out faces of its training data and record the quantiles in its metadata; a projector written with
    them is rewritten last, to refresh its copies. Returns one line per model recorded. Without the data folder
    (trained elsewhere) nothing is measured, and `note` says so."""
    measured = [path for path in written if _base(path) in (*DECODERS, *ENCODERS)]
    if not measured or faces <= 0:
        return []
    if data is None or not Path(data).exists():
        note(
            f"not calibrated: the training data {Path(data).name if data else '(unknown)'} is not here, so the "
            f"exports record no held-out PSNR and `project` cannot mark faces out of their domain"
        )
        return []
    size = read_metadata(measured[0])["image_size"]
    held_out = load_split(data, size, "held-out")
    if not len(held_out.names):
        note(f"not calibrated: {Path(data).name} has no held-out faces")
        return []
    images = held_out.images[:faces]
    where = f"{len(images)} held-out faces of {Path(data).name}"
    lines = []
    for path in measured:  # the versions just written, also where `--version` put them below older ones
        backend.use_version(_base(path), int(path.name))  # the backend adds the family's prefix (`export --prefix`)
    for path in measured:
        model, version = _base(path), int(path.name)
        if model in DECODERS:
            try:
                psnr, start = projection_psnr(backend, registry, DECODERS[model], images)
            except FacemathError as exc:
                note(f"{path.parent.name} version {version} not calibrated: {exc}")
                continue
            method = "projection"
            settings = (
                f"facemath project --model {DECODERS[model]} (defaults: 1000 steps, contextual loss, start {start})"
            )
        else:
            decoder = ENCODERS[model]
            psnr, method = encoder_psnr(backend, decoder, images), "encoder"
            settings = f"the encoder round trip through {decoder} version {backend.version(decoder)}, no projection"
        entry = record(psnr, method, settings, where, "facemath export")
        rewrite_metadata(path, lambda meta, entry=entry: {**meta, "reconstruction_psnr": entry})
        q = entry["quantiles"]
        lines.append(
            f"{path.parent.name} version {version}: held-out PSNR 1st percentile {q['0.01']:.1f} dB, median "
            f"{q['0.5']:.1f} dB ({where})"
        )
    for path in written:
        if _base(path) == S.PROJECTOR:
            rewrite_metadata(path, lambda meta: meta)  # refreshes its generator's and discriminator's copies
    return lines
