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


def project_psnr(registry, backend, model: str, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Known-pixel PSNR of `facemath project --model gan|vae` with its defaults, and how the search started: the
    library's own measurement (`projection.calibration`, what `facemath export` records), not a copy of it."""
    from facemath_core.projection.calibration import projection_psnr

    return projection_psnr(backend, registry, model, images)


def encoder_psnr(backend, decoder: str, images: np.ndarray) -> np.ndarray:
    """PSNR of the encoder round trip: D(E(x)) for the VAE (what `facemath encode` reports), G(E(x)) for the GAN."""
    from facemath_core.projection import calibration

    return calibration.encoder_psnr(backend, decoder, images)


def quantiles(values: np.ndarray) -> dict[str, float]:
    from facemath_core.projection.calibration import quantiles as recorded

    return recorded(values)


def calibrate(args) -> None:
    from facemath_core.base import signatures as S

    rows, out = [], {}
    _, images = held_out_faces(args.count)
    _, encoder_images = held_out_faces(args.encoder_count)
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
        psnr, start = project_psnr(registry, backend, family, images[:count])
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
            out = WORK / f"{command}_{name}"
            if not (out / "latents.npz").exists() and args.only and command not in args.only:
                continue  # not asked for now; a result folder made before is reported all the same
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
            "lfw": "the first 100 faces of scikit-image's lfw_subset, 25x25 grey upscaled to 160, detected and "
            f"aligned (no face found in {len(missed)})",
            "lfw_missed": missed,
            "results": results,
        },
    )


def timing(args) -> None:
    """Detection + alignment, ms per photo, warm (the detector loaded), in interleaved rounds: each round times
    every photo once, so load on the shared machine hits all of them alike; median and spread over rounds."""
    from PIL import Image
    from skimage import data

    from facemath_core.base import signatures as S
    from facemath_core.data.align import Aligner, model_template

    registry, backend = open_models()
    aligner = Aligner(registry, model_template(backend.metadata(S.GENERATOR), S.GENERATOR))
    astronaut = data.astronaut()
    group = np.full((520, 1100, 3), 200, np.uint8)
    group[:512, :512] = astronaut
    group[100:356, 560:816] = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS))
    group[150:246, 880:976] = lfw_photos(1, 96)[0]
    phone = np.asarray(Image.fromarray(astronaut).resize((3024, 3024), Image.Resampling.BICUBIC))
    phone = np.pad(phone, ((0, 0), (504, 504), (0, 0)), mode="edge")  # 4032x3024, a phone camera's frame
    photos = {
        "astronaut 512x512 (1 face)": astronaut,
        "LFW face 160x160 (1 face)": lfw_photos(1)[0],
        "group 1100x520 (3 faces)": group,
        "phone-sized 4032x3024 (1 face; searched at 1600x1200)": phone,
    }
    for name, photo in photos.items():  # warm up: the detector's networks load and trace once
        aligner.align(photo, name, "warm.png")
    times = {name: [] for name in photos}
    for _ in range(args.rounds):
        for name, photo in photos.items():
            started = time.perf_counter()
            faces = aligner.align(photo, name, "photo.png")
            times[name].append(1000 * (time.perf_counter() - started))
    rows = [
        {
            "photo": name,
            "faces": len(aligner.align(photo, name, "photo.png")),
            "ms median": round(float(np.median(times[name])), 1),
            "ms min": round(float(np.min(times[name])), 1),
            "ms max": round(float(np.max(times[name])), 1),
        }
        for name, photo in photos.items()
    ]
    del faces
    print_table("detection + alignment, ms per photo (warm)", rows)
    load = [round(v, 1) for v in os.getloadavg()]  # the shared machine's load while it was measured
    write_json("real_photos_timing", {"rounds": args.rounds, "detector": "mtcnn", "rows": rows, "load_average": load})


def astronaut(args) -> None:
    """scikit-image's astronaut through the command line as a user runs it: projected squashed (the whole frame
    resized: what `project me.png` did before --align), projected aligned, and edited with the vectors of the 600
    projected synthetic faces (`--phase ood` first); the picture for docs/models.md."""
    from PIL import Image, ImageDraw
    from skimage import data

    from facemath_core.base.drawing import font
    from facemath_core.latent.latents import load_latents

    work = WORK / "astronaut"
    work.mkdir(parents=True, exist_ok=True)
    photo = work / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    vectors = WORK / "project_synthetic" / "latents.npz"
    if not vectors.exists():
        raise SystemExit(f"{vectors}: run --phase ood first (its projected synthetic faces give the vectors)")
    runs = {
        "squashed": ["project", photo, "--out", work / "squashed"],
        "aligned": ["project", photo, "--align", "--out", work / "aligned"],
        "aligned_vae": ["encode", photo, "--align", "--out", work / "aligned_vae"],
    }
    for name, command in runs.items():
        if not (work / name / "latents.npz").exists():
            print(facemath(*command, "--models", MODELS))
    edited = work / "smiling.png"
    if not edited.exists():
        print(
            facemath("edit", photo, "--vectors", vectors, "--attr", "Smiling=1.5", "--out", edited, "--models", MODELS)
        )
    align_out = work / "align"
    if not align_out.exists():
        facemath("align", photo, "--out", align_out, "--models", MODELS)
    results = {}
    for name in runs:
        latents = load_latents(work / name / "latents.npz")
        results[name] = {
            "psnr": round(float(latents.psnr[0]), 2),
            "out_of_domain": None if latents.out_of_domain is None else bool(latents.out_of_domain[0]),
        }
    print_table("the astronaut", [{"run": k, **v} for k, v in results.items()])
    # The picture: the photo with her face's box and landmarks; the aligned crop and its projection; the squashed
    # frame and its projection; the edited photo (Smiling +1.5), cropped around her head to be seen.
    import json

    record = json.loads((align_out / "faces.json").read_text())["faces"][0]
    big = 192
    tiles = []
    sheet_photo = Image.open(photo).convert("RGB")
    draw = ImageDraw.Draw(sheet_photo)
    draw.rectangle(record["box"], outline=(255, 200, 0), width=3)
    for x, y in record["landmarks"]:
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(255, 0, 80))
    tiles.append(("photo 512x512, face found", sheet_photo.resize((big, big), Image.Resampling.LANCZOS)))
    for caption, path in (
        ("aligned 64x64", align_out / record["name"]),
        (f"projected {results['aligned']['psnr']:.1f} dB", work / "aligned" / "reconstructions" / "astronaut_1.png"),
        ("squashed (before --align)", None),
        (f"projected {results['squashed']['psnr']:.1f} dB", work / "squashed" / "reconstructions" / "astronaut.png"),
    ):
        picture = Image.open(photo).resize((64, 64), Image.Resampling.LANCZOS) if path is None else Image.open(path)
        tiles.append((caption, picture.convert("RGB").resize((big, big), Image.Resampling.NEAREST)))
    x0, y0, x1, y1 = record["box"]
    side = 2.2 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    tiles.append(("edit Smiling=1.5", Image.open(edited).convert("RGB").crop(box).resize((big, big))))
    caption = 34
    sheet = Image.new("RGB", (len(tiles) * (big + 6) + 6, big + caption + 6), (255, 255, 255))
    for i, (text, tile) in enumerate(tiles):
        sheet.paste(tile, (6 + i * (big + 6), caption))
        ImageDraw.Draw(sheet).text((6 + i * (big + 6), 8), text, fill=(0, 0, 0), font=font(13))
    picture = ROOT / "docs" / "images" / "astronaut_align_project_edit.png"
    sheet.save(picture)
    write_json(
        "real_photos_astronaut",
        {
            "photo": "skimage.data.astronaut()",
            "results": results,
            "picture": str(picture.relative_to(ROOT)),
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
    import copy
    import json

    from facemath_core.data.align import Template
    from facemath_core.data.synth import landmark_template
    from facemath_core.models.cards import rewrite_metadata
    from facemath_core.models.layout import read_metadata

    template = Template(landmark_template(28_800, seed=0, size=64), 64, SHIPPED_TEMPLATE_SOURCE).record()
    path = RESULTS / "real_photos_calibration.json"
    calibration = json.loads(path.read_text())["models"] if path.exists() else {}
    rows, rewritten = [], set()
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

        folder = MODELS / model / str(version)
        current = read_metadata(folder)
        if change(copy.deepcopy(current)) == current:
            status = "unchanged"  # not rewritten: a rewrite would still write a new fingerprint.pb (a new uuid)
        else:
            rewrite_metadata(folder, change)
            status = "rewritten"
            rewritten.add((model, version))
        rows.append({"model": f"{model}/{version}", "psnr quantiles": "yes" if record else "no", "metadata": status})
    for version_dir in sorted((MODELS / "projector").iterdir()):
        if not (version_dir / "saved_model.pb").exists():
            continue
        # its saved_model.pb holds copies of the metadata of the versions it was built from: stale if one was rewritten
        components = read_metadata(version_dir).get("components", {})
        stale = [
            f"{name}/{c.get('version')}" for name, c in components.items() if (name, c.get("version")) in rewritten
        ]
        if stale:
            rewrite_metadata(version_dir, lambda meta: meta)  # refreshes its copies of generator and discriminator
        status = f"copies of {', '.join(stale)} refreshed" if stale else "unchanged"
        rows.append({"model": f"projector/{version_dir.name}", "psnr quantiles": "copies", "metadata": status})
    print_table("metadata rewritten (weights untouched)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", required=True, choices=["calibrate", "metadata", "timing", "astronaut", "ood"])
    parser.add_argument("--count", type=int, default=512, help="calibrate: held-out faces for generator/2")
    parser.add_argument("--side-count", type=int, default=256, help="calibrate: for generator/1 and vae_decoder")
    parser.add_argument("--encoder-count", type=int, default=3200, help="calibrate: for the encoders")
    parser.add_argument("--rounds", type=int, default=9, help="timing: interleaved rounds")
    parser.add_argument("--only", nargs="*", help="calibrate: only these MODEL/VERSION; ood: project or encode")
    args = parser.parse_args()
    phases = {"calibrate": calibrate, "metadata": write_metadata, "ood": ood, "timing": timing, "astronaut": astronaut}
    phases[args.phase](args)


if __name__ == "__main__":
    main()
