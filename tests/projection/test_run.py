"""One projection run for every front end (issue 27): the run object, its sinks, reused projectors, the default
start. The reference for every sink is the result folder `facemath project` writes."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.errors import FacemathError
from facemath_core.data.images import from_unit
from facemath_core.host import contracts
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import load_latents
from facemath_core.models.cards import rewrite_metadata
from facemath_core.projection import run as run_module
from facemath_core.projection.projector import ProjectorCache, resolve_start
from facemath_core.projection.run import FolderSink, MemorySink, ProjectionRun, load_inputs
from facemath_core.projection.settings import projection_config
from facemath_core.serving.backends.embedded import EmbeddedBackend

from ..support import write_generated_faces


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def faces(backend, tmp_path_factory):
    """Five faces the tiny generator made, as PNG files."""
    return write_generated_faces(backend, tmp_path_factory.mktemp("run_faces"), 5, seed=5)


REGISTRY = load_registry(builtins_only=True)


def test_memory_and_folder_sinks_get_the_same_result(backend, faces, tmp_path):
    """The studio's and compare's sink (memory) and the CLI's (a folder) get one run's numbers, and the folder
    holds what the run returned; a mask hides pixels, so both have the blended completions too."""
    config = projection_config(REGISTRY, steps=12, batch_size=2, restarts=2, mask="center", init="uniform")
    inputs = load_inputs([str(faces)], 32)
    memory = MemorySink()
    in_memory = ProjectionRun(backend, REGISTRY, config).run(inputs, memory)
    assert memory.result is in_memory
    on_disk = ProjectionRun(backend, REGISTRY, config).run(inputs, FolderSink(tmp_path / "out"))
    saved = load_latents(tmp_path / "out" / "latents.npz")
    for latents in (on_disk.latents, saved):
        np.testing.assert_array_equal(latents.z, in_memory.latents.z)
        np.testing.assert_array_equal(latents.losses["total"], in_memory.latents.losses["total"])
        np.testing.assert_array_equal(latents.psnr.astype(np.float32), in_memory.latents.psnr.astype(np.float32))
    assert saved.flagged.tolist() == [bool(r) for r in in_memory.reasons]
    assert in_memory.completions.shape == (5, 32, 32, 3)
    completion = np.asarray(Image.open(tmp_path / "out" / "completions" / "face3.png"))
    np.testing.assert_array_equal(completion, from_unit(in_memory.completions[3]))
    assert in_memory.start == "uniform random z" and saved.config["init"] == "uniform"


def test_a_second_run_reuses_the_projector(backend, faces, monkeypatch):
    """From a cache, the second run of the same components gets the first's projector: no contract is checked
    again and nothing is traced again, even with other steps, seed and patience; another component set gets a
    projector of its own."""
    checked = []
    original = contracts.check_loss_term
    monkeypatch.setattr(contracts, "check_loss_term", lambda *a, **k: (checked.append(a[0].name), original(*a, **k)))
    cache = ProjectorCache(backend, REGISTRY)
    inputs = load_inputs([str(faces)], 32)
    config = projection_config(REGISTRY, loss_plugins=["perceptual"], steps=6, batch_size=5)
    with ProjectionRun(backend, REGISTRY, config, projectors=cache) as first:
        projector = first.projector
        reference = first.run(inputs, MemorySink())
    traces = projector.tracing_count()
    assert checked == ["contextual", "perceptual"] and traces == 1
    other = replace(config, steps=9, seed=3, patience=2)
    with ProjectionRun(backend, REGISTRY, other, projectors=cache) as second:
        assert second.projector is projector
        again = second.run(inputs, MemorySink())
    assert checked == ["contextual", "perceptual"] and projector.tracing_count() == traces and cache.built == 1
    alone = ProjectionRun(backend, REGISTRY, other).run(inputs, MemorySink())
    np.testing.assert_array_equal(again.latents.z, alone.latents.z)  # a reused projector runs `other` exactly
    assert not np.array_equal(again.latents.z, reference.latents.z)
    with ProjectionRun(backend, REGISTRY, replace(config, init="uniform"), projectors=cache) as third:
        assert third.projector is not projector and cache.built == 2


def test_a_run_stopped_early_keeps_the_faces_it_reached(backend, faces):
    config = projection_config(REGISTRY, steps=5000, batch_size=2, init="uniform", patience=10**6)
    calls = []
    result = ProjectionRun(backend, REGISTRY, config).run(
        load_inputs([str(faces)], 32), MemorySink(), stop=lambda: calls.append(1) or len(calls) >= 2
    )
    assert result.cancelled and result.latents.names == ["face0.png", "face1.png"]  # the first batch only
    assert np.isfinite(result.latents.losses["total"]).all() and result.generated.shape == (2, 32, 32, 3)


def test_the_command_builds_the_masks_once(cli, tiny_export, faces, tmp_path, monkeypatch):
    built = []
    original = run_module.build_masks
    monkeypatch.setattr(run_module, "build_masks", lambda *a, **k: built.append(1) or original(*a, **k))
    out = tmp_path / "out"
    result = cli(
        "complete", str(faces), "--models", str(tiny_export), "--steps", "2", "--mask", "random", "-o", str(out)
    )
    assert result.code == 0, result.stderr
    assert built == [1] and len(list((out / "completions").iterdir())) == 5


# --- the best start by default ----------------------------------------------------------------------------------


def test_project_starts_from_the_models_own_encoder_and_says_so(cli, tiny_export, faces, tmp_path):
    common = [str(faces), "--models", str(tiny_export), "--steps", "3"]
    default = cli("project", *common, "-o", str(tmp_path / "default"))
    assert default.code == 0, default.stderr
    summary = default.stdout.splitlines()[1]
    assert summary.endswith(
        "; started at E(x) of gan_encoder version 1 (the model's own encoder; --init uniform for the papers' "
        "random start)"
    ), summary
    latents = load_latents(tmp_path / "default" / "latents.npz")
    assert latents.config["init"] == "encoder" and latents.models["gan_encoder"] == 1
    papers = cli("project", *common, "--init", "uniform", "-o", str(tmp_path / "uniform"))
    assert papers.stdout.splitlines()[1].endswith("; started at uniform random z"), papers.stdout
    preset = cli("project", *common, "--preset", "amos2016", "-o", str(tmp_path / "preset"))
    assert preset.stdout.splitlines()[1].endswith("; started at uniform random z"), preset.stdout
    assert load_latents(tmp_path / "preset" / "latents.npz").config["init"] == "uniform"
    vae = cli("project", *common, "--model", "vae", "-o", str(tmp_path / "vae"))
    assert "; started at E(x) of vae_encoder version 1" in vae.stdout, vae.stdout + vae.stderr


def test_without_a_fitting_encoder_the_default_start_is_uniform(tiny_export, tmp_path):
    """No encoder, or one trained for another generator version: the default start is the papers' (not an
    error), and the reason is given; `--init encoder` asked for by name is still refused in one line."""
    models = tmp_path / "models"
    shutil.copytree(tiny_export, models, ignore=shutil.ignore_patterns("gan_encoder"))
    config = projection_config(REGISTRY)
    chosen, words = resolve_start(EmbeddedBackend(models), config)
    assert chosen.init == "uniform" and words == "uniform random z (the models have no gan_encoder)"
    shutil.copytree(tiny_export / "gan_encoder", models / "gan_encoder")
    rewrite_metadata(models / "gan_encoder" / "1", lambda m: {**m, "generator": {**m["generator"], "version": 7}})
    backend = EmbeddedBackend(models)
    chosen, words = resolve_start(backend, config)
    assert chosen.init == "uniform"
    expected = "gan_encoder version 1 was trained for generator version 7, not the generator version 1 projected onto"
    assert words == f"uniform random z ({expected})"
    with pytest.raises(
        FacemathError, match="--init encoder: gan_encoder version 1 was trained for generator version 7"
    ):
        ProjectionRun(backend, REGISTRY, replace(config, init="encoder"))
