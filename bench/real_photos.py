"""Real photos (issue 26): what the shipped models do with faces they were not trained on, measured.

Phases (`--phase`, each writes its own JSON in bench/results/):

- `calibrate` (real_photos_calibration.json): the held-out reconstruction PSNR of every generator, decoder and
  encoder on the held-out partition of the shipped models' data (`facemath data synth --count 32000 --seed 0`: faces
  28,801 and on, rendered again exactly). Generators and the VAE decoder: `facemath project` with its defaults (the
  model's own encoder as the start, 1000 steps, the contextual loss); encoders: the round trip D(E(x)) / G(E(x)) that
  `facemath encode` measures. `--write-metadata` then records the quantiles in each export's metadata
  (`models.cards.rewrite_metadata`, weights untouched), with the landmark template of the synthetic renderer.
- `timing` (real_photos_timing.json): detection + alignment, ms per photo, on scikit-image's photos.
- `astronaut` (real_photos_astronaut.json): scikit-image's astronaut projected squashed (the whole frame resized,
  what `project me.png` did before `--align`) and aligned; the picture docs/images/astronaut_align_project_edit.png.
- `ood` (real_photos_ood.json): the share of faces marked out of domain among 100 LFW faces (scikit-image's
  `lfw_subset`, upscaled, detected and aligned) and among 600 held-out synthetic faces (`facemath data synth
  --count 600 --seed 12345 --held-out-percent 100`), projected and encoded with the defaults.

Run each under `nice -n 10`: projection is the slow part (about 1.2 s per face at 1000 steps on the 2 shared cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import RESULTS, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "exported_models"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HELD_OUT_FIRST = 28_800  # the shipped data: 32,000 faces, the last 10% held out (docs/models.md)
HELD_OUT_RECIPE = "facemath data synth --count 32000 --seed 0 --out faces"


def held_out_faces(count: int, seed: int = 0, first: int = HELD_OUT_FIRST) -> tuple[list[str], np.ndarray]:
    """Faces first+1 ... first+count of `facemath data synth --seed SEED`, as uint8, exactly as the command writes
    them (face i depends only on the seed and i)."""
    from facemath_core.data.synth import FaceSampler, face_rng, render_face, to_uint8

    sampler = FaceSampler()
    names = [f"{first + i + 1:06d}.png" for i in range(count)]
    images = np.stack([to_uint8(render_face(sampler.sample(face_rng(seed, first + i)), 64)) for i in range(count)])
    return names, images


def open_models(versions: dict[str, int] | None = None):
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends import open_backend

    registry = load_registry(builtins_only=True)
    backend = open_backend(MODELS, None, manager=registry.manager)
    for model, version in (versions or {}).items():
        backend.use_version(model, version)
    return registry, backend


def project_psnr(registry, backend, model: str, names: list[str], images: np.ndarray) -> tuple[np.ndarray, str]:
    """Known-pixel PSNR of `facemath project` with its defaults (`--model gan|vae`), and how the search started."""
    from facemath_core.data.images import to_unit
    from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun
    from facemath_core.projection.settings import projection_config

    run = ProjectionRun(backend, registry, projection_config(registry, model=model))
    result = run.run(JobInputs(list(names), list(names), to_unit(images), []), MemorySink(), warn=print)
    return np.asarray(result.latents.psnr, np.float64), result.start


def encoder_psnr(backend, decoder: str, images: np.ndarray) -> np.ndarray:
    """PSNR of the encoder round trip: D(E(x)) for the VAE (what `facemath encode` reports), G(E(x)) for the GAN."""
    from facemath_core.base.metrics import known_psnr
    from facemath_core.data.images import to_unit

    x = to_unit(images)
    z = backend.encode_z(x, decoder)
    back = backend.generate(z, decoder)
    return known_psnr(x, back, np.ones(x.shape[:3], np.float32))


def quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"{q:g}": round(float(np.quantile(values, q)), 3) for q in QUANTILES}


def calibrate(args) -> None:
    from facemath_core.base import signatures as S

    rows, out = [], {}
    names, images = held_out_faces(args.count)
    encoder_names, encoder_images = held_out_faces(args.encoder_count)
    plans = [
        ("generator", 2, "gan", {S.GENERATOR: 2, S.GAN_ENCODER: 2}),
        ("generator", 1, "gan", {S.GENERATOR: 1, S.GAN_ENCODER: 1}),
        ("vae_decoder", 1, "vae", {}),
    ]
    for model, version, family, versions in plans:
        if args.only and f"{model}/{version}" not in args.only:
            continue
        count = args.count if (model, version) == ("generator", 2) else args.side_count
        registry, backend = open_models(versions)
        started = time.perf_counter()
        psnr, start = project_psnr(registry, backend, family, names[:count], images[:count])
        seconds = time.perf_counter() - started
        out[f"{model}/{version}"] = {
            "method": "projection",
            "settings": f"facemath project --model {family} (defaults: 1000 steps, contextual loss, start {start})",
            "faces": int(count),
            "quantiles": quantiles(psnr),
            "mean": round(float(psnr.mean()), 3),
            "seconds": round(seconds, 1),
            "psnr": [round(float(p), 3) for p in psnr],
        }
        rows.append({"model": f"{model}/{version}", "faces": count, **out[f"{model}/{version}"]["quantiles"]})
        print_table("held-out PSNR (dB)", rows[-1:])
        _save_calibration(out, merge=True)  # each model as it is done: the runs are long
    for model, version, decoder, versions in [
        ("gan_encoder", 2, S.GENERATOR, {S.GENERATOR: 2, S.GAN_ENCODER: 2}),
        ("gan_encoder", 1, S.GENERATOR, {S.GENERATOR: 1, S.GAN_ENCODER: 1}),
        ("vae_encoder", 1, S.VAE_DECODER, {}),
    ]:
        if args.only and f"{model}/{version}" not in args.only:
            continue
        _, backend = open_models(versions)
        psnr = encoder_psnr(backend, decoder, encoder_images)
        round_trip = "G(E(x))" if decoder == S.GENERATOR else "D(E(x)), as facemath encode reports it"
        out[f"{model}/{version}"] = {
            "method": "encoder",
            "settings": f"the encoder round trip {round_trip}, no projection steps",
            "faces": int(len(psnr)),
            "quantiles": quantiles(psnr),
            "mean": round(float(psnr.mean()), 3),
            "psnr": [round(float(p), 3) for p in psnr],
        }
        rows.append({"model": f"{model}/{version}", "faces": len(psnr), **out[f"{model}/{version}"]["quantiles"]})
    print_table("held-out reconstruction PSNR quantiles (dB)", rows)
    _save_calibration(out, merge=True)


def _save_calibration(models: dict, merge: bool) -> None:
    """real_photos_calibration.json with these models' figures (and, merging, the other models' from before)."""
    import json

    previous = RESULTS / "real_photos_calibration.json"
    if merge and previous.exists():
        models = {**json.loads(previous.read_text()).get("models", {}), **models}
    write_json(
        "real_photos_calibration",
        {"data": f"held-out partition of `{HELD_OUT_RECIPE}` (faces {HELD_OUT_FIRST + 1:,} on)", "models": models},
    )


WORK = Path(os.environ.get("FACEMATH_BENCH_WORK", "/tmp/facemath-real-photos"))  # inputs and result folders
SYNTH_RECIPE = ["--count", "600", "--seed", "12345", "--held-out-percent", "100"]


def facemath(*args: str) -> str:
    """`facemath ARGS` as a user runs it (a process of its own); its output, or the run stops with its error."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "facemath_core", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"facemath {' '.join(map(str, args))}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout + done.stderr


def lfw_photos(count: int = 100, side: int = 160) -> list[np.ndarray]:
    """scikit-image's LFW faces (the first `count` of lfw_subset, which are faces), grey 25x25 upscaled to `side`."""
    from PIL import Image
    from skimage import data

    return [
        np.repeat(
            np.asarray(Image.fromarray(np.uint8(f * 255)).resize((side, side), Image.Resampling.BICUBIC))[..., None],
            3,
            2,
        )
        for f in data.lfw_subset()[:count]
    ]


def ood(args) -> None:
    """Project (and encode) 600 held-out synthetic faces and 100 aligned LFW faces with the defaults; the share
    marked out of domain, with the function and figures `project` and `encode` use (projection.flags)."""
    from PIL import Image

    from facemath_core.base import signatures as S
    from facemath_core.data.align import Aligner, model_template
    from facemath_core.data.synth import write_synthetic_folder
    from facemath_core.latent.latents import load_latents
    from facemath_core.projection.flags import out_of_domain

    WORK.mkdir(parents=True, exist_ok=True)
    synth = WORK / "synth600"
    if not synth.exists():  # exactly `facemath data synth --count 600 --seed 12345 --held-out-percent 100`
        write_synthetic_folder(synth, 600, seed=12345, held_out_percent=100)
    lfw = WORK / "lfw_aligned"
    registry, backend = open_models()
    if not lfw.exists():
        aligner = Aligner(registry, model_template(backend.metadata(S.GENERATOR), S.GENERATOR))
        lfw.mkdir()
        missed = []
        for i, photo in enumerate(lfw_photos()):
            try:
                (face, *_) = aligner.align(photo, f"lfw{i:03d}.png", f"lfw{i:03d}.png")
                Image.fromarray(face.crop).save(lfw / face.name)
            except Exception as exc:  # no face found: counted, not projected
                missed.append(f"lfw{i:03d}.png: {exc}")
        (WORK / "lfw_missed.txt").write_text("\n".join(missed) + "\n")
    results = {}
    for name, folder in (("synthetic", synth), ("lfw", lfw)):
        for command in ("project", "encode"):
            if args.only and command not in args.only:
                continue
            out = WORK / f"{command}_{name}"
            if not (out / "latents.npz").exists():
                started = time.perf_counter()
                facemath(command, folder, "--out", out, "--models", MODELS)
                print(f"{command} {name}: {time.perf_counter() - started:.0f} s")
            latents = load_latents(out / "latents.npz")
            judged = S.GENERATOR if command == "project" else S.VAE_ENCODER
            marks = out_of_domain(latents.psnr, backend.metadata(judged))
            results[f"{command}/{name}"] = {
                "faces": len(latents.names),
                "judged_by": f"{judged} version {backend.version(judged)}",
                "out_of_domain": None if marks is None else int(marks.sum()),
                "rate": None if marks is None else round(float(marks.mean()), 4),
                "psnr_mean": round(float(np.mean(latents.psnr)), 2),
                "psnr_quantiles": quantiles(latents.psnr),
            }
    missed = [line for line in (WORK / "lfw_missed.txt").read_text().splitlines() if line]
    print_table(
        "out of domain",
        [{"run": k, **{x: y for x, y in v.items() if x != "psnr_quantiles"}} for k, v in results.items()],
    )
    write_json(
        "real_photos_ood",
        {
            "synthetic": "facemath data synth " + " ".join(SYNTH_RECIPE) + " (none of them trained on)",
            "lfw": f"the first 100 faces of scikit-image's lfw_subset, 25x25 grey upscaled to 160, detected and aligned "
            f"(no face found in {len(missed)})",
            "lfw_missed": missed,
            "results": results,
        },
    )


SHIPPED_TEMPLATE_SOURCE = (
    "the mean of the landmarks facemath's renderer drew on the 28,800 training faces of `facemath data synth "
    "--count 32000 --seed 0` (facemath_core.data.synth.landmark_template)"
)
# Which calibration each export records: generators and the VAE decoder their projection's, encoders their round
# trip's. The projector holds copies of its generator's and discriminator's metadata: rewritten last, it refreshes them.
RECORDED = {
    ("generator", 1): "generator/1",
    ("generator", 2): "generator/2",
    ("vae_decoder", 1): "vae_decoder/1",
    ("vae_encoder", 1): "vae_encoder/1",
    ("gan_encoder", 1): "gan_encoder/1",
    ("gan_encoder", 2): "gan_encoder/2",
}


def write_metadata(args) -> None:
    """Record the landmark template and (once calibrated) the held-out PSNR quantiles in the shipped exports'
    metadata, without retraining (models.cards.rewrite_metadata: the weights stay byte for byte)."""
    import json

    from facemath_core.data.align import Template
    from facemath_core.data.synth import landmark_template
    from facemath_core.models.cards import rewrite_metadata

    template = Template(landmark_template(28_800, seed=0, size=64), 64, SHIPPED_TEMPLATE_SOURCE).record()
    path = RESULTS / "real_photos_calibration.json"
    calibration = json.loads(path.read_text())["models"] if path.exists() else {}
    rows = []
    for (model, version), key in RECORDED.items():
        record = calibration.get(key)

        def change(meta, record=record):
            meta = {**meta, "landmarks": template}
            if record is not None:
                meta["reconstruction_psnr"] = {
                    "quantiles": record["quantiles"],
                    "faces": record["faces"],
                    "method": record["method"],
                    "settings": record["settings"],
                    "data": f"the held-out partition of `{HELD_OUT_RECIPE}`",
                    "unit": "dB",
                    "source": "bench/results/real_photos_calibration.json",
                }
            return meta

        rewrite_metadata(MODELS / model / str(version), change)
        rows.append({"model": f"{model}/{version}", "landmarks": "yes", "psnr quantiles": "yes" if record else "no"})
    for version_dir in sorted((MODELS / "projector").iterdir()):
        if (version_dir / "saved_model.pb").exists():
            rewrite_metadata(version_dir, lambda meta: meta)  # refreshes its copies of generator and discriminator
            rows.append({"model": f"projector/{version_dir.name}", "landmarks": "copies", "psnr quantiles": "copies"})
    print_table("metadata rewritten (weights untouched)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", required=True, choices=["calibrate", "metadata", "timing", "astronaut", "ood"])
    parser.add_argument("--count", type=int, default=512, help="calibrate: held-out faces for generator/2")
    parser.add_argument("--side-count", type=int, default=256, help="calibrate: for generator/1 and vae_decoder")
    parser.add_argument("--encoder-count", type=int, default=3200, help="calibrate: for the encoders")
    parser.add_argument("--only", nargs="*", help="calibrate: only these MODEL/VERSION; ood: project or encode")
    args = parser.parse_args()
    {"calibrate": calibrate, "metadata": write_metadata, "ood": ood}[args.phase](args)


if __name__ == "__main__":
    main()
