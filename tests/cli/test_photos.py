"""Real photos from the command line (issue 26): `facemath align`, `--align` on project and encode, out-of-domain
marks judged against the model's own held-out PSNR, and `facemath edit`. On the tiny models of conftest.py (whose
export records the landmark template of their synthetic training faces) and scikit-image's photos."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data

from facemath_core.data.align import Template
from facemath_core.data.synth import landmark_template
from facemath_core.latent.latents import Latents, load_latents, save_latents
from facemath_core.models.cards import rewrite_metadata
from facemath_core.models.layout import read_metadata

from ..support import assert_one_error

STEPS = "5"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.chelsea()).save(folder / "chelsea.png")
    return folder


def test_the_export_records_the_training_faces_template(tiny_export):
    """The tiny models trained on `data synth --count 160 --seed 5 --size 32` (10% held out): their template is the
    mean of the landmarks the renderer drew on the 144 training faces."""
    record = read_metadata(tiny_export / "generator" / "1")["landmarks"]
    np.testing.assert_allclose(record["template"], landmark_template(144, seed=5, size=32), atol=1e-3)
    assert record["image_size"] == 32 and record["names"][0] == "eye_left" and "144 training faces" in record["source"]
    assert read_metadata(tiny_export / "vae_encoder" / "1")["landmarks"] == record


def test_align_writes_crops_faces_json_and_a_sheet(cli, tiny_export, photos, tmp_path):
    out = tmp_path / "aligned"
    result = cli("align", photos / "astronaut.png", "--models", tiny_export, "--out", out)
    assert result.code == 0, result.stderr
    assert "aligned 1 face from 1 photo" in result.stdout
    crop = np.asarray(Image.open(out / "astronaut_1.png"))
    assert crop.shape == (32, 32, 3)
    record = json.loads((out / "faces.json").read_text())
    (face,) = record["faces"]
    assert face["photo"].endswith("astronaut.png") and face["face"] == 1 and face["name"] == "astronaut_1.png"
    assert record["detector"]["name"] == "mtcnn" and record["template"]["image_size"] == 32
    # the transform takes her landmarks onto the model's template
    matrix = np.asarray(face["transform"])
    moved = (matrix @ np.c_[np.asarray(face["landmarks"]), np.ones(5)].T).T[:, :2]
    assert np.abs(moved - np.asarray(record["template"]["template"])).max() < 1.0
    assert Image.open(out / "contact_sheet.png").size[1] >= 256


def test_align_to_celebas_positions_needs_no_model(cli, photos, tmp_path):
    result = cli("align", photos / "astronaut.png", "--template", "celeba", "--size", "64", "--out", tmp_path / "c")
    assert result.code == 0, result.stderr
    assert "CelebA" in json.loads((tmp_path / "c" / "faces.json").read_text())["template"]["source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chelsea.png"], r"^error: no face found in chelsea.png \(detector mtcnn, min face 20 px\)$"),
        (["astronaut.png", "--min-face", "300"], r"no face of at least 300 px in astronaut.png .* lower --min-face"),
        (["astronaut.png", "--detector", "dlib"], r"--detector dlib: unknown detector; known: mtcnn"),
        (["astronaut.png", "--detector-param", "mtcnn.threshold=2"], r"mtcnn.threshold=2.*threshold of detector"),
        (["astronaut.png", "chelsea.png"], r"1 of 2 photos could not be aligned: no face found in chelsea.png"),
    ],
)
def test_align_bad_input_is_one_line(cli, tiny_export, photos, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(photos)
    out = tmp_path / "out"
    result = cli("align", *args, "--models", tiny_export, "--out", out)
    assert re.search(message, assert_one_error(result)), result.stderr
    assert not out.exists()


def test_project_align_records_the_photo_and_face_and_resumes(cli, tiny_export, photos, tmp_path):
    out = tmp_path / "p"
    result = cli("project", photos / "astronaut.png", "--align", "--models", tiny_export, "--steps", STEPS, "-o", out)
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    assert latents.names == ["astronaut_1.png"]
    (face,) = latents.config["faces"]
    assert face["photo"].endswith("astronaut.png") and face["face"] == 1 and len(face["landmarks"]) == 5
    aligned = tmp_path / "a"
    assert cli("align", photos / "astronaut.png", "--models", tiny_export, "--out", aligned).code == 0
    original = np.asarray(Image.open(out / "reconstructions" / "astronaut_1.png"))
    # a resume makes the crop again from the photo and the recorded transform: the same target, more steps
    resumed = cli("project", "--resume", out, "--steps", "8", "--models", tiny_export)
    assert resumed.code == 0, resumed.stderr
    again = load_latents(out / "latents.npz")
    assert again.names == ["astronaut_1.png"] and again.config["faces"][0]["transform"] == face["transform"]
    assert original.shape == (32, 32, 3)


def test_align_with_shard_is_refused(cli, tiny_export, photos, tmp_path):
    result = cli(
        "project", photos / "astronaut.png", "--align", "--shard", "1/2", "--models", tiny_export, "-o", tmp_path / "x"
    )
    assert result.code == 2 and "--align" in result.stderr


# --- out of domain -------------------------------------------------------------------------------------------------


def with_quantiles(tiny_export, tmp_path, model: str, low: float, typical: float):
    """A copy of the tiny models whose `model` records held-out PSNR quantiles (1st percentile `low`)."""
    models = tmp_path / "models"
    shutil.copytree(tiny_export, models)
    record = {
        "quantiles": {"0.01": low, "0.5": typical, "0.99": typical + 3},
        "faces": 16,
        "method": "projection",
        "unit": "dB",
        "data": "the tiny test faces",
    }
    rewrite_metadata(models / model / "1", lambda m: {**m, "reconstruction_psnr": record})
    return models


@pytest.mark.parametrize(("low", "marked"), [(99.0, True), (-50.0, False)])
def test_one_face_is_marked_out_of_domain_by_the_models_own_figures(cli, tiny_export, photos, tmp_path, low, marked):
    """Nothing to compare with in a run of one face, so the run-relative flags say nothing; the model's 1st
    percentile does: a face below it is marked in latents.npz, the summary and a warning naming the typical PSNR."""
    models = with_quantiles(tiny_export, tmp_path, "generator", low, low + 5)
    out = tmp_path / "p"
    result = cli("project", photos / "astronaut.png", "--align", "--models", models, "--steps", STEPS, "-o", out)
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    assert latents.out_of_domain.tolist() == [marked] and latents.flagged.tolist() == [False]
    assert f"{int(marked)} out of the model's domain" in result.stdout
    warned = f"astronaut_1.png: out of the model's domain: PSNR {latents.psnr[0]:.1f} dB, below generator version 1's"
    lines = [line for line in result.stderr.splitlines() if "out of the model's domain" in line]
    assert len(lines) == int(marked), result.stderr  # the warning is one line, however long (not wrapped)
    if marked:
        assert lines[0].startswith("warning: ") and warned in lines[0], lines[0]
        assert f"typical {low + 5:.1f} dB on its held-out faces" in lines[0], lines[0]


def test_a_model_without_figures_marks_nothing(cli, tiny_export, photos, tmp_path):
    out = tmp_path / "p"
    result = cli("project", photos / "astronaut.png", "--align", "--models", tiny_export, "--steps", STEPS, "-o", out)
    assert result.code == 0, result.stderr
    assert load_latents(out / "latents.npz").out_of_domain is None and "out of the model's domain" not in result.stdout


def test_encode_align_marks_by_the_encoders_figures(cli, tiny_export, photos, tmp_path):
    models = with_quantiles(tiny_export, tmp_path, "vae_encoder", 99.0, 104.0)
    out = tmp_path / "e"
    result = cli("encode", photos / "astronaut.png", "--align", "--models", models, "-o", out)
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    assert latents.names == ["astronaut_1.png"] and latents.out_of_domain.tolist() == [True]
    assert latents.config["faces"][0]["face"] == 1
    assert "below vae_encoder version 1's 1st percentile (99.0 dB; typical 104.0 dB" in result.stderr
    assert "1 of 1 out of the model's domain" in result.stdout


# --- edit ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vectors(cli, tiny_export, synth_faces, tmp_path_factory):
    """The 48 labelled synthetic faces projected with the tiny generator: what attribute vectors are fitted on."""
    out = tmp_path_factory.mktemp("vectors") / "proj"
    result = cli("project", synth_faces, "--models", tiny_export, "--steps", "20", "-o", out)
    assert result.code == 0, result.stderr
    return out / "latents.npz"


def test_edit_pastes_only_the_face_and_keeps_the_photos_size(cli, tiny_export, photos, vectors, tmp_path):
    out = tmp_path / "edited.png"
    result = cli(
        "edit", photos / "astronaut.png", "--vectors", vectors, "--attr", "Smiling=1.5", "--attr", "Male=-1",
        "--out", out, "--models", tiny_export, "--steps", STEPS,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "edited 1 face of" in result.stdout and "Smiling +1.5, Male -1" in result.stdout
    photo, edited = data.astronaut(), np.asarray(Image.open(out))
    assert edited.shape == photo.shape
    changed = (edited != photo).any(axis=2)
    assert changed.sum() > 100
    # every changed pixel lies in the face region: mapped into the crop by the face's transform (from `align`),
    # inside the ellipse around the template's landmarks, give or take the bilinear edge
    aligned = tmp_path / "a"
    assert cli("align", photos / "astronaut.png", "--models", tiny_export, "--out", aligned).code == 0
    record = json.loads((aligned / "faces.json").read_text())
    matrix, template = np.asarray(record["faces"][0]["transform"]), np.asarray(record["template"]["template"])
    ys, xs = np.nonzero(changed)
    spots = (matrix @ np.c_[xs, ys, np.ones(len(xs))].T).T[:, :2]
    centre, eyes = template.mean(axis=0), np.linalg.norm(template[1] - template[0])
    radius = np.hypot((spots[:, 0] - centre[0]) / (1.1 * eyes), (spots[:, 1] - centre[1]) / (1.45 * eyes))
    assert radius.max() <= 1.0 + 1.5 / (1.1 * eyes)


@pytest.mark.parametrize("blend", ["poisson", "overlay"])
def test_edit_with_another_blender(cli, tiny_export, photos, vectors, tmp_path, blend):
    out = tmp_path / "edited.png"
    args = ["--attr", "Smiling=1", "--blend", blend, "--out", out, "--models", tiny_export, "--steps", STEPS]
    result = cli("edit", photos / "astronaut.png", "--vectors", vectors, *args)
    assert result.code == 0, result.stderr
    assert np.asarray(Image.open(out)).shape == data.astronaut().shape


def test_edit_refuses_vectors_of_another_version(cli, tiny_export, photos, vectors, tmp_path):
    latents = load_latents(vectors)
    other = tmp_path / "other.npz"
    save_latents(other, Latents(latents.names, latents.z, "gan", "generator", 7, "projection", config=latents.config))
    result = cli(
        "edit", photos / "astronaut.png", "--vectors", other, "--attr", "Smiling=1", "--out", tmp_path / "o.png",
        "--models", tiny_export,
    )  # fmt: skip
    line = assert_one_error(result)
    assert "fitted on generator version 7, but this edit uses version 1" in line
    assert not (tmp_path / "o.png").exists()


def test_edit_refuses_vectors_of_another_model(cli, tiny_export, photos, vectors, tmp_path):
    latents = load_latents(vectors)
    vae = tmp_path / "vae.npz"
    save_latents(vae, Latents(latents.names, latents.z, "vae", "vae_decoder", 1, "encoder", config=latents.config))
    result = cli(
        "edit", photos / "astronaut.png", "--vectors", vae, "--attr", "Smiling=1", "--out", tmp_path / "o.png",
        "--models", tiny_export,
    )  # fmt: skip
    line = assert_one_error(result)
    assert "latents of the vae model vae_decoder, but this edit uses generator" in line


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--attr", "Smiling"], 2, "write NAME=AMOUNT"),
        (["--attr", "Smiling=lots"], 2, "'lots' is not a number"),
        (["--attr", "Smiling=inf"], 2, "finite"),
        (["--attr", "Wings=1"], 1, "has no attribute 'Wings'"),
        (["--attr", "Smiling=1", "--blend", "smudge"], 1, "--blend smudge: unknown blender"),
    ],
)
def test_edit_bad_input(cli, tiny_export, photos, vectors, tmp_path, args, code, message):
    out = tmp_path / "o.png"
    result = cli("edit", photos / "astronaut.png", "--vectors", vectors, *args, "--out", out, "--models", tiny_export)
    assert result.code == code and message in result.stderr, result.stderr
    assert not out.exists()


def test_edit_a_photo_without_a_face(cli, tiny_export, photos, vectors, tmp_path):
    out = tmp_path / "o.png"
    result = cli(
        "edit",
        photos / "chelsea.png",
        "--vectors",
        vectors,
        "--attr",
        "Smiling=1",
        "--out",
        out,
        "--models",
        tiny_export,
    )
    assert "no face found in chelsea.png (detector mtcnn, min face 20 px)" in assert_one_error(result)
    assert not out.exists()


def test_template_scales_with_the_crop():
    template = Template(np.array([[10.0, 12], [22, 12], [16, 18], [11, 24], [21, 24]]), 32, "t")
    np.testing.assert_allclose(template.at(64).at(32).points, template.points)


def test_export_records_the_held_out_psnr_of_what_it_writes(cli, tiny_runs, train_faces, tmp_path):
    """`facemath export --calibrate 4`: the VAE's encoder records the quantiles of its round trip D(E(x)) on the
    first 4 held-out faces of its training folder (checked here with PSNR's own formula, 10 log10(peak^2 / MSE)
    with a peak-to-peak of 2 on [-1, 1]), its decoder those of a projection with project's defaults."""
    from facemath_core.data.images import to_unit
    from facemath_core.data.pipeline import load_split
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    models = tmp_path / "models"
    result = cli("export", tiny_runs["vae"], "--to", models, "--calibrate", "4")
    assert result.code == 0, result.stderr
    assert "calibrated vae_encoder version 1: held-out PSNR 1st percentile" in result.stdout
    encoder = read_metadata(models / "vae_encoder" / "1")["reconstruction_psnr"]
    decoder = read_metadata(models / "vae_decoder" / "1")["reconstruction_psnr"]
    assert encoder["faces"] == decoder["faces"] == 4 and encoder["method"] == "encoder"
    assert decoder["method"] == "projection" and "1000 steps" in decoder["settings"]
    x = to_unit(load_split(train_faces, 32, "held-out").images[:4])
    backend = EmbeddedBackend(models)
    back = backend.generate(backend.encode(x)[0], "vae_decoder")
    psnr = 10 * np.log10(4.0 / ((x.astype(np.float64) - back) ** 2).mean(axis=(1, 2, 3)))
    assert encoder["quantiles"]["0.5"] == pytest.approx(np.median(psnr), abs=2e-3)
    assert encoder["quantiles"]["0.01"] == pytest.approx(np.quantile(psnr, 0.01), abs=2e-3)
    assert "landmarks" in read_metadata(models / "vae_decoder" / "1")


def test_export_calibrates_the_vaegan_encoder_and_decoder(cli, tiny_runs, train_faces, tmp_path):
    """The VAE-GAN's encoder is measured by its round trip Dec(Enc(x)) (recomputed here), its decoder by projection;
    its discriminator does not reconstruct and records nothing."""
    from facemath_core.data.images import to_unit
    from facemath_core.data.pipeline import load_split
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    models = tmp_path / "models"
    result = cli("export", tiny_runs["vaegan"], "--to", models, "--calibrate", "3")
    assert result.code == 0, result.stderr
    for name in ("vaegan_encoder", "vaegan_decoder"):
        assert f"calibrated {name} version 1: held-out PSNR 1st percentile" in result.stdout
    encoder = read_metadata(models / "vaegan_encoder" / "1")["reconstruction_psnr"]
    decoder = read_metadata(models / "vaegan_decoder" / "1")["reconstruction_psnr"]
    assert encoder["method"] == "encoder" and decoder["method"] == "projection" and decoder["faces"] == 3
    assert "--model vaegan" in decoder["settings"]
    assert "reconstruction_psnr" not in read_metadata(models / "vaegan_discriminator" / "1")
    x = to_unit(load_split(train_faces, 32, "held-out").images[:3])
    backend = EmbeddedBackend(models)
    back = backend.generate(backend.encode(x, "vaegan_encoder")[0], "vaegan_decoder")
    psnr = 10 * np.log10(4.0 / ((x.astype(np.float64) - back) ** 2).mean(axis=(1, 2, 3)))
    assert encoder["quantiles"]["0.5"] == pytest.approx(np.median(psnr), abs=2e-3)


def test_export_calibrate_0_records_nothing(cli, tiny_runs, tmp_path):
    models = tmp_path / "models"
    assert cli("export", tiny_runs["vae"], "--to", models, "--calibrate", "0").code == 0
    assert "reconstruction_psnr" not in read_metadata(models / "vae_encoder" / "1")


def test_export_with_a_prefix_is_calibrated_too(cli, tiny_runs, tmp_path):
    """`--prefix fam` names the models fam_vae_encoder, fam_vae_decoder: they are measured and recorded the same."""
    models = tmp_path / "models"
    result = cli("export", tiny_runs["vae"], "--to", models, "--prefix", "fam", "--calibrate", "2")
    assert result.code == 0, result.stderr
    assert "calibrated fam_vae_encoder version 1: held-out PSNR 1st percentile" in result.stdout
    for name in ("fam_vae_encoder", "fam_vae_decoder"):
        assert read_metadata(models / name / "1")["reconstruction_psnr"]["faces"] == 2, name
