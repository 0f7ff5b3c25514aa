"""`facemath math`, `analogy`, `attributes` and `compare` end to end, with tiny exported models."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import line_height
from facemath_core.latent.latents import load_latents

EXPRESSION = "mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)"


@pytest.fixture(scope="module")
def encoded_faces(cli, tiny_export, train_faces, tmp_path_factory):
    """VAE latents of 160 labelled faces; their attribute file is found next to the images."""
    out = tmp_path_factory.mktemp("arith") / "enc"
    result = cli("encode", str(train_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    return out / "latents.npz"


def test_math_draws_the_dcgan_analogy_and_saves_the_result(cli, encoded_faces, tiny_export, tmp_path):
    out = tmp_path / "math"
    result = cli("math", EXPRESSION, "--latents", str(encoded_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    terms = json.loads((out / "terms.json").read_text())["terms"]
    assert [t["sign"] for t in terms] == ["+", "-", "+"] and all(len(t["faces"]) == 3 for t in terms)
    latents = load_latents(encoded_faces)
    rows = [[latents.names.index(f) for f in t["faces"]] for t in terms]
    expected = latents.z[rows[0]].mean(0) - latents.z[rows[1]].mean(0) + latents.z[rows[2]].mean(0)
    saved = load_latents(out / "latents.npz")
    assert saved.names[0] == "result" and len(saved.names) == 9 and saved.family == "vae"
    np.testing.assert_allclose(saved.z[0], expected, atol=1e-5)
    jitter = saved.z[1:] - saved.z[0]
    assert np.abs(jitter).max() <= 0.25 and np.abs(jitter).max() > 0.1
    grid = np.asarray(Image.open(out / "grid.png"))
    header, tile = line_height(), 4 * 32  # 32 px faces drawn at 4x
    assert grid.shape[:2] == (header + 2 + 4 * (tile + 2), 2 + 3 * (tile + 2 + 32) + 3 * (tile + 2))
    for term in range(3):  # each term's text over its column
        left = 2 + term * (tile + 2 + 32)
        assert (grid[:header, left : left + tile] < 100).any()
    for gutter in range(3):  # -, + and = between the columns, level with the terms' row
        left = 2 + gutter * (tile + 2 + 32) + tile + 2
        assert (grid[-tile - 2 :, left : left + 30] < 100).any()
        assert not (grid[header : -tile - 2, left : left + 30] < 100).any()
    assert Image.open(out / "result.png").size == (32, 32)


def test_math_group_members_have_the_attributes(cli, encoded_faces, train_faces, tiny_export, tmp_path):
    from facemath_core.data.folders import open_faces

    folder = open_faces(train_faces)
    out = tmp_path / "m"
    result = cli(
        "math", "mean(Eyeglasses & ~Male)", "--exemplars", "0", "--latents", str(encoded_faces),
        "--models", str(tiny_export), "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    faces = json.loads((out / "terms.json").read_text())["terms"][0]["faces"]
    expected = [
        n
        for n, g, m in zip(folder.names, folder.attribute("Eyeglasses"), folder.attribute("Male"), strict=True)
        if g and not m
    ]
    assert faces == expected


def test_math_skips_flagged_faces_unless_included(cli, encoded_faces, train_faces, tiny_export, tmp_path):
    from facemath_core.data.folders import open_faces
    from facemath_core.latent.latents import save_latents

    folder = open_faces(train_faces)
    members = [
        n
        for n, g, m in zip(folder.names, folder.attribute("Eyeglasses"), folder.attribute("Male"), strict=True)
        if g and not m
    ]
    latents = load_latents(encoded_faces)
    latents.flagged = np.array([n == members[0] for n in latents.names])
    flagged_file = encoded_faces.parent / "flagged.npz"  # next to the original, so the attribute file is found
    save_latents(flagged_file, latents)
    base = ["math", "mean(Eyeglasses & ~Male)", "--exemplars", "0", "--latents", str(flagged_file)]
    result = cli(*base, "--models", str(tiny_export), "--out", str(tmp_path / "skip"))
    assert result.code == 0, result.stderr
    assert f"note: skipped 1 flagged face (failed projections: {members[0]})" in result.stderr
    faces = json.loads((tmp_path / "skip" / "terms.json").read_text())["terms"][0]["faces"]
    assert faces == members[1:]
    result = cli(*base, "--include-flagged", "--models", str(tiny_export), "--out", str(tmp_path / "all"))
    assert result.code == 0, result.stderr
    assert "flagged" not in result.stderr
    assert json.loads((tmp_path / "all" / "terms.json").read_text())["terms"][0]["faces"] == members


@pytest.mark.parametrize(
    "expression, message",
    [
        ("mean(Smiling & ", "error: expression column 16: the expression ends too early"),
        ("mean(Smilng)", "error: expression column 6: unknown latent or attribute 'Smilng'; did you mean Smiling?"),
        (
            "mean(Wearing_Hat & ~Wearing_Hat)",
            "error: expression column 6: the group Wearing_Hat & ~Wearing_Hat is empty",
        ),
    ],
)
def test_math_bad_expressions_say_one_line_and_write_nothing(
    cli, encoded_faces, tiny_export, tmp_path, expression, message
):
    out = tmp_path / "bad"
    result = cli("math", expression, "--latents", str(encoded_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code in (1, 2)
    assert result.stderr.strip().startswith(message.split(":")[0]) and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_math_refuses_to_mix_models_and_needs_labels(cli, encoded_faces, tiny_export, tmp_path):
    from facemath_core.latent.latents import save_latents

    gan = load_latents(encoded_faces)
    gan.family, gan.model, gan.names = "gan", "generator", [f"g{n}" for n in gan.names]
    save_latents(tmp_path / "gan.npz", gan)
    result = cli(
        "math", "mean(Smiling)", "--latents", str(encoded_faces), "--latents", str(tmp_path / "gan.npz"),
        "--models", str(tiny_export), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.code == 1 and "cannot be mixed with" in result.stderr and "gan.npz" in result.stderr
    unlabelled = load_latents(encoded_faces)
    unlabelled.config = {"inputs": []}
    save_latents(tmp_path / "nolabels.npz", unlabelled)
    result = cli(
        "math", "attr(Smiling)", "--latents", str(tmp_path / "nolabels.npz"),
        "--models", str(tiny_export), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.code == 1 and "needs attribute labels" in result.stderr and "--attributes" in result.stderr
    assert not (tmp_path / "o").exists()


def test_math_with_an_explicit_attribute_file_and_other_z_size(cli, encoded_faces, train_faces, tiny_export, tmp_path):
    from facemath_core.latent.latents import save_latents

    attr = tmp_path / "labels.txt"
    shutil.copy(train_faces / "list_attr_celeba.txt", attr)
    latents = load_latents(encoded_faces)
    latents.config = {"inputs": []}
    save_latents(tmp_path / "l.npz", latents)
    result = cli(
        "math", "000010 + 0.5 * attr(Smiling)", "--latents", str(tmp_path / "l.npz"), "--attributes", str(attr),
        "--models", str(tiny_export), "--out", str(tmp_path / "ok"),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    latents.z = np.concatenate([latents.z, latents.z], axis=1)  # 16 dims: another model's latents
    save_latents(tmp_path / "wide.npz", latents)
    result = cli(
        "math", "000010", "--latents", str(tmp_path / "wide.npz"), "--attributes", str(attr),
        "--models", str(tiny_export), "--out", str(tmp_path / "wide"),
    )  # fmt: skip
    assert result.code == 1 and "latents of 16 dimensions" in result.stderr
    assert not (tmp_path / "wide").exists()


def test_analogy_draws_a_j_diagram(cli, encoded_faces, tiny_export, tmp_path):
    from facemath_core.data.images import from_unit
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    out = tmp_path / "j.png"
    result = cli(
        "analogy", "000001", "000002", "mean(Smiling & Male)", "--size", "4", "--latents", str(encoded_faces),
        "--models", str(tiny_export), "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    grid = np.asarray(Image.open(out))
    header, caption, tile = line_height(), line_height(), 4 * 32  # 32 px faces drawn at 4x, legible beside text
    assert grid.shape == (header + 2 + 4 * (tile + 2) + caption, 2 + 4 * (tile + 2), 3)  # a caption on C's row
    assert (grid[:header, : tile + 2] < 100).any() and (grid[:header, -tile - 2 :] < 100).any()  # "A = ", "B = "
    assert not (grid[:header, tile + 4 : 2 * tile + 4] < 100).any()  # nothing over the middle columns
    latents = load_latents(encoded_faces)
    backend = EmbeddedBackend(tiny_export)
    a, b = (latents.z[latents.names.index(n)] for n in ("000001.png", "000002.png"))
    corners = from_unit(backend.generate(np.stack([a, b]), "vae_decoder"))
    top = header + 2
    # The lower half of each corner tile (the upper left holds its letter), shrunk back to 32 px.
    a_tile = grid[top + tile // 2 : top + tile : 4, 2 : 2 + tile : 4]
    b_tile = grid[top + tile // 2 : top + tile : 4, -tile - 2 : -2 : 4]
    assert np.abs(a_tile.astype(int) - corners[0][16:]).max() <= 1  # top left: A
    assert np.abs(b_tile.astype(int) - corners[1][16:]).max() <= 1  # top right: B
    assert (grid[top + 2 : top + 16, 4:14] < 100).any()  # the letter A on its tile's white patch


def test_attributes_scores_every_attribute(cli, encoded_faces, tiny_export, tmp_path):
    out = tmp_path / "attrs"
    result = cli("attributes", "--latents", str(encoded_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    summary = json.loads((out / "attributes.json").read_text())
    scores = {s["attribute"]: s for s in summary["scores"]}
    assert {"Smiling", "Male", "Eyeglasses"} <= set(scores) and summary["bias_corrected"]
    for s in scores.values():
        assert 0 <= s["auc"] <= 1 and s["positives"] + s["negatives"] == 48
        if s["edited"]:
            assert s["success_low"] <= s["success"] <= s["success_high"] and 0 <= s["preserved"] <= 1
    with np.load(out / "vectors.npz") as vectors:
        assert vectors["vectors"].shape == (len(summary["scores"]), 8)
    assert "| Smiling |" in (out / "attributes.md").read_text()
    examples = np.asarray(Image.open(out / "examples.png").convert("RGB"))
    header, row = line_height(), line_height() + 4 * 32 + 2  # each row: its attribute's caption, then 8 faces at 4x
    rows, rest = divmod(examples.shape[0] - header - 2, row)
    assert examples.shape[1] == 2 + 8 * 130 and rest == 0 and 1 <= rows <= 12
    assert (examples[:header, 2:130] < 100).any() and (examples[:header, 2 + 4 * 130 : 5 * 130] < 100).any()
    for r in range(rows):  # "before" over the first four, "after" over the last four, every row captioned
        assert (examples[header + 2 + r * row : header + 2 + r * row + line_height()] < 100).any()


@pytest.mark.slow
def test_compare_writes_the_report(cli, train_faces, tiny_export, tmp_path):
    out = tmp_path / "report"
    result = cli(
        "compare", "--data", str(train_faces), "--count", "40", "--steps", "4", "--trials", "3",
        "--models", str(tiny_export), "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == [
        "GAN projection", "hybrid (encoder init)", "in-domain hybrid", "VAE encoder", "VAE-GAN encoder",
        "VAE-GAN hybrid",
    ]  # fmt: skip
    # The folder has a partition file: only its held-out faces (the last 10%, 16 of 160) are compared.
    partition = (train_faces / "list_eval_partition.txt").read_text().split("\n")
    held_out = [line.split()[0] for line in partition if line.strip() and line.split()[1] != "0"]
    assert report["face_names"] == held_out and "held-out faces of list_eval_partition.txt" in report["faces_used"]
    assert "comparing on 16 faces" in result.stderr and "warning: only 16 faces" in result.stderr
    for entry in report["methods"].values():
        assert entry["faces"] == 16 and np.isfinite(entry["psnr"][0]) and entry["psnr"][1] > 0
        assert set(entry["analogies"]) == {"1", "3"}
        assert entry["frechet"][0] > 0 and entry["frechet"][1] > 0
        assert all(score["exemplars"] == 1 for score in entry["matched_analogies"])
    assert [r["model"] for r in report["realism"]["prior_samples"]] == ["generator", "vae_decoder", "vaegan_decoder"]
    assert report["realism"]["real_halves"]["faces"] == 8
    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Verdict" in markdown and "## Realism of the models' own faces" in markdown
    for method in report["methods"]:  # one sentence per method, and each measure's leader is named
        assert f"{method}: " in markdown
    figures = ("reconstructions.png", "quality.png", "auc.png", "arithmetic.png", "priors.png", "example_vae.png")
    for figure in figures + ("example_vaegan-hybrid.png",):
        assert (out / figure).stat().st_size > 1000 and figure in markdown and f'src="{figure}"' in html
    assert "n = 16 faces per method" in markdown and "<table>" in html
    gan = load_latents(out / "latents_gan.npz")
    assert gan.family == "gan"
    # The report's GAN projection of a face is `facemath project`'s (the same preset, steps and seed): each face
    # is seeded by its file name, not by its place among the compared faces. Five faces, in another order.
    names = list(reversed(report["face_names"][:5]))
    projected = cli(
        "project", *[str(next(train_faces.rglob(name))) for name in names], "--preset", "amos2016", "--steps", "4",
        "--seed", "0", "--models", str(tiny_export), "--out", str(tmp_path / "single"),
    )  # fmt: skip
    assert projected.code == 0, projected.stderr
    single = load_latents(tmp_path / "single" / "latents.npz")
    for name in names:
        np.testing.assert_allclose(
            single.z[single.names.index(name)], gan.z[list(gan.names).index(name)], atol=1e-6, err_msg=name
        )
    # The projection shards feeding the report: the held-out faces projected in two shards through the VAE-GAN
    # (`project` as the report's VAE-GAN hybrid runs it), merged, and fed with `--latents`. Same numbers.
    held_out_paths = [str(next(train_faces.rglob(name))) for name in report["face_names"]]
    for k in (1, 2):
        sharded = cli(
            "project", *held_out_paths, "--preset", "amos2016", "--model", "vaegan", "--init", "encoder",
            "--steps", "4", "--seed", "0", "--shard", f"{k}/2", "--models", str(tiny_export),
            "--out", str(tmp_path / f"shard{k}"),
        )  # fmt: skip
        assert sharded.code == 0, sharded.stderr
    merged = cli("latents", "merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "-o", str(tmp_path / "m"))
    assert merged.code == 0, merged.stderr
    fed = cli(
        "compare", "--data", str(train_faces), "--count", "40", "--steps", "4", "--trials", "3",
        "--latents", f"vaegan-hybrid={tmp_path / 'm' / 'latents.npz'}", "--models", str(tiny_export),
        "--out", str(tmp_path / "fed"),
    )  # fmt: skip
    assert fed.code == 0, fed.stderr
    assert "VAE-GAN hybrid: 16 faces from" in fed.stderr
    refed = json.loads((tmp_path / "fed" / "report.json").read_text())
    own, taken = report["methods"]["VAE-GAN hybrid"], refed["methods"]["VAE-GAN hybrid"]
    for key in ("psnr", "ssim", "l1", "frechet", "oracle_agreement"):
        assert taken[key] == pytest.approx(own[key], abs=1e-5), key
    assert taken["vectors"] == own["vectors"] and taken["analogies"] == own["analogies"]  # the same z, the same edits
    merged_latents = load_latents(tmp_path / "m" / "latents.npz")
    assert taken["latents_from"] == str(tmp_path / "m" / "latents.npz")
    assert taken["seconds_per_image"] == pytest.approx(merged_latents.config["projection_seconds"] / 16)
    np.testing.assert_allclose(  # float32 rounding differs with the batch's size (8 faces a shard, 16 here)
        load_latents(tmp_path / "fed" / "latents_vaegan-hybrid.npz").z,
        load_latents(out / "latents_vaegan-hybrid.npz").z,
        atol=1e-5,
    )
    assert "Projections fed from earlier runs" in (tmp_path / "fed" / "report.md").read_text()


@pytest.mark.slow
def test_compare_lambdas_writes_the_lambda_knob_section(cli, train_faces, tiny_export, tiny_backend, tmp_path):
    out = tmp_path / "report"
    result = cli(
        "compare", "--data", str(train_faces), "--count", "40", "--steps", "4", "--trials", "2", "--exemplars", "1",
        "--lambdas", "1000,0,10", "--models", str(tiny_export), "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    knob, names = report["lambda_knob"], report["face_names"]
    assert report["config"]["lambdas"] == [0.0, 10.0, 1000.0]
    rows = {(r["mode"], r["lambda (sum)"]): r for r in knob["rows"]}
    assert list(rows) == [(mode, lam) for mode in ("projection", "completion") for lam in (0.0, 10.0, 1000.0)]
    # The mean scale: lambda / known pixel values; 32x32x3 = 3072 of them, 2304 around Amos' center hole (16x16).
    for (mode, lam), row in rows.items():
        known = 3072 if mode == "projection" else 3072 - 16 * 16 * 3
        assert row["known pixel values"] == known and row["lambda (mean)"] == pytest.approx(lam / known)
    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## The lambda knob" in markdown and "<h2>The lambda knob</h2>" in html
    table = [line for line in markdown.split("\n") if line.startswith(("| projection |", "| completion |"))]
    assert len(table) == 6  # one row per mode and lambda
    assert (out / "lambda_strip.png").stat().st_size > 1000 and "(lambda_strip.png)" in markdown
    # At lambda 1000 the perceptual term -log D(G(z)) is a large share of the objective being descended, so D rises
    # over plain contextual loss (lambda 0) in both modes, even in 4 steps; at 10 it is still a small share.
    for mode in ("projection", "completion"):
        assert rows[(mode, 1000.0)]["perceptual share"] > 0.3 > rows[(mode, 10.0)]["perceptual share"]
        assert rows[(mode, 1000.0)]["D(G(z))"] > rows[(mode, 0.0)]["D(G(z))"]
    # The sentence follows the numbers: where D(G(z)) first rises by 0.1 over lambda 0, or that it never does.
    for mode in ("projection", "completion"):
        base = rows[(mode, 0.0)]["D(G(z))"]
        realer = next((lam for lam in (10.0, 1000.0) if rows[(mode, lam)]["D(G(z))"] - base >= 0.1), None)
        expected = f"first rises by 0.1 or more at lambda_sum {realer:g}" if realer else "does not rise by 0.1"
        assert f"{mode}: from lambda_sum 0 (D(G(z)) {base:.3f}" in markdown and expected in markdown
    # One row recomputed another way: `facemath project` with the perceptual weight 10 on the same faces, then
    # PSNR, the discriminator and the oracle on its G(z), computed here.
    paths = [str(next(train_faces.rglob(name))) for name in names]
    projected = cli(
        "project", *paths, "--preset", "amos2016", "--loss-plugin", "perceptual=10", "--steps", "4", "--seed", "0",
        "--models", str(tiny_export), "--out", str(tmp_path / "single"),
    )  # fmt: skip
    assert projected.code == 0, projected.stderr
    single = load_latents(tmp_path / "single" / "latents.npz")
    assert list(single.names) == names
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float64) / 127.5 - 1.0 for p in paths])
    generated = np.asarray(tiny_backend.generate(single.z), np.float64)
    psnr = 10 * np.log10(4.0 / ((generated - images) ** 2).mean(axis=(1, 2, 3)))
    realism = 1 / (1 + np.exp(-np.asarray(tiny_backend.discriminate(generated), np.float64).reshape(-1)))
    oracle = tiny_backend.metadata("attribute_oracle")["attribute_names"]
    columns = [oracle.index(a) for a in report["judged_attributes"]]
    agree = (tiny_backend.judge(generated)[:, columns] > 0) == (tiny_backend.judge(images)[:, columns] > 0)
    row = rows[("projection", 10.0)]
    assert row["known PSNR dB"] == pytest.approx(psnr.mean(), abs=1e-3)
    assert row["D(G(z))"] == pytest.approx(realism.mean(), abs=1e-4)
    assert row["oracle agreement"] == pytest.approx(agree.mean(axis=1).mean(), abs=1e-6)
    assert f"| projection | 10 | {10 / 3072:.3g} | {psnr.mean():.2f} ± " in markdown


def test_compare_needs_labelled_faces(cli, tiny_export, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(folder / f"{i}.png")
    result = cli("compare", "--data", str(folder), "--models", str(tiny_export), "--out", str(tmp_path / "r"))
    assert result.code == 1 and "has no list_attr_celeba.txt" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def two_projected(cli, tiny_export, train_faces, tmp_path_factory):
    """Two held-out faces projected with the report's GAN settings for 2 steps: a latents file for --latents."""
    out = tmp_path_factory.mktemp("fed") / "two"
    faces = [str(next(train_faces.rglob(name))) for name in ("000145.png", "000146.png")]
    result = cli(
        "project", *faces, "--preset", "amos2016", "--steps", "2", "--models", str(tiny_export), "--out", str(out)
    )
    assert result.code == 0, result.stderr
    return out / "latents.npz"


@pytest.mark.parametrize(
    "slug, steps, message",
    [
        ("nope", "2", "--latents nope={file}: no method 'nope'; projections that take latents: gan, hybrid, in-domain, "
         "vaegan-hybrid"),
        ("vae", "2", "--latents vae={file}: the VAE encoder's z is computed in milliseconds; only projections take it"),
        ("hybrid", "2", "--latents hybrid={file}: projected with init 'uniform'; the report's hybrid (encoder init) "
         "uses 'encoder' (--steps and --seed are compare's; the rest is `project --preset amos2016 --init encoder`)"),
        ("vaegan-hybrid", "2", "--latents vaegan-hybrid={file}: holds projection latents of generator; the VAE-GAN "
         "hybrid projects through vaegan_decoder"),
        ("gan", "3", "--latents gan={file}: projected with steps 2; the report's GAN projection uses 3 (--steps"),
        ("gan", "2", "--latents gan={file}: has no projection of 000147.png (and 13 more) of the 16 compared faces"),
    ],
)  # fmt: skip
def test_compare_refuses_latents_it_would_not_have_computed(
    cli, tiny_export, train_faces, two_projected, tmp_path, slug, steps, message
):
    result = cli(
        "compare", "--data", str(train_faces), "--steps", steps, "--latents", f"{slug}={two_projected}",
        "--models", str(tiny_export), "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert result.code == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: " + message.format(file=two_projected)) and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--latents", "gan", "'gan': SLUG=FILE, e.g. gan=runs/gan/latents.npz"),
        ("--held-out", "1.5", "a fraction between 0 and 1"),
        ("--seed", "-1", "--seed"),
        ("--count", "0", "--count"),
        ("--lambdas", "x", "'x': comma-separated numbers"),
        ("--lambdas", "0,-1", "-1: each lambda must be a finite number, 0 or more"),
        ("--lambdas", "nan", "nan: each lambda must be a finite number"),
        ("--lambdas", "", "no lambda given"),
    ],
)
def test_compare_checks_its_options_before_any_work(cli, tiny_export, train_faces, tmp_path, option, value, message):
    result = cli(
        "compare", "--data", str(train_faces), "--models", str(tiny_export), "--out", str(tmp_path / "r"), option, value
    )
    assert result.code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
