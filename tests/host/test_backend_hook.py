"""Backends a plugin can write: the hook gets the resolved model folder and version, `--models` goes with a
plugin's scheme, a scheme nobody claims is one line, and every command closes the backend it opened; initialisers
learn which decoder they start; a third-party loss that keeps a server off its one-request path is said once."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from facemath_core.testing import registry, run, tiny_faces

RECORDING = """
    import json, os
    from facemath_core import hookimpl
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    LOG = os.environ["BACKEND_LOG"]

    def log(**entry):
        with open(LOG, "a") as handle:
            handle.write(json.dumps(entry) + "\\n")

    class Cache(EmbeddedBackend):
        name = "cache"

        def describe(self):
            return "cache over " + str(self.root)

        def close(self):
            log(event="close")

    @hookimpl(tryfirst=True)
    def facemath_open_backend(models, server, options):
        log(event="open", models=models, server=server, version=options.get("version"))
        if server and server.startswith("cache://"):
            return Cache(models)
        if server is None:
            return Cache(models)
"""


@pytest.fixture
def backend_plugin(tmp_path, monkeypatch):
    plugin = tmp_path / "cache_backend.py"
    plugin.write_text(textwrap.dedent(RECORDING))
    log = tmp_path / "backend.log"
    monkeypatch.setenv("BACKEND_LOG", str(log))
    return plugin, log


def events(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    return sorted((tiny_faces(tmp_path_factory.mktemp("faces") / "faces", 1) / "img_align_celeba").glob("*.png"))[0]


def test_the_hook_gets_the_resolved_folder_and_version_and_the_backend_is_closed(
    backend_plugin, kit_models, face, tmp_path
):
    plugin, log = backend_plugin
    out = tmp_path / "out"
    result = run("--plugin", plugin, "project", face, "--models", kit_models, "--model-version", 1, "--steps", 1,
                 "-o", out)  # fmt: skip
    assert result.code == 0, result.stderr
    assert events(log) == [
        {"event": "open", "models": str(kit_models), "server": None, "version": 1},
        {"event": "close"},
    ]
    from facemath_core.latent.latents import load_latents

    assert load_latents(out / "latents.npz").config["backend"] == f"cache over {kit_models}"


def test_the_default_folder_is_resolved_too(backend_plugin, kit_models, face, tmp_path, monkeypatch):
    plugin, log = backend_plugin
    monkeypatch.setenv("FACEMATH_MODELS", str(kit_models))
    result = run("--plugin", plugin, "project", face, "--steps", 1, "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert events(log)[0] == {"event": "open", "models": str(kit_models), "server": None, "version": None}


def test_a_command_that_fails_after_opening_still_closes(backend_plugin, kit_models, face, tmp_path):
    plugin, log = backend_plugin
    # The file mask finds no mask file: the command fails after the backend is open.
    result = run("--plugin", plugin, "complete", face, "--models", kit_models, "--mask", "file", "--param",
                 f"file.dir={tmp_path / 'nowhere'}", "--steps", 1, "-o", tmp_path / "out")  # fmt: skip
    assert result.code == 1 and "mask file" in result.error
    assert [e["event"] for e in events(log)] == ["open", "close"]


def test_models_go_with_a_plugins_scheme_but_not_with_a_grpc_target(backend_plugin, kit_models, face, tmp_path):
    plugin, log = backend_plugin
    ok = run("--plugin", plugin, "project", face, "--server", "cache://here", "--models", kit_models, "--steps", 1,
             "-o", tmp_path / "out")  # fmt: skip
    assert ok.code == 0, ok.stderr
    assert events(log)[0] == {"event": "open", "models": str(kit_models), "server": "cache://here", "version": None}
    refused = run("project", face, "--server", "localhost:1", "--models", kit_models, "-o", tmp_path / "x")
    assert refused.code == 2 and "give --models or --server, not both" in refused.error


def test_a_scheme_no_plugin_claims_is_one_line(face, tmp_path):
    result = run("project", face, "--server", "kserve://somewhere:8080", "-o", tmp_path / "out")
    assert result.code == 1
    assert result.error.startswith("--server kserve://somewhere:8080: no backend plugin claims kserve://")


DECODER = """
    import os
    import numpy as np
    from facemath_core import Initializer, Param, hookimpl

    def best_of_k(targets, z_dim, bound, rng, backend, decoder, k=4):
        with open(os.environ["DECODER_LOG"], "a") as handle:
            handle.write(decoder + "\\n")
        candidates = rng.uniform(-bound, bound, (k, z_dim)).astype(np.float32)
        images = backend.generate(candidates, decoder)  # the decoder projected onto, whatever its z size
        errors = np.abs(images[None] - targets[:, None]).sum(axis=(2, 3, 4))
        return candidates[np.argmin(errors, axis=1)]

    @hookimpl
    def facemath_initializers():
        return [Initializer("best-of-k", "The best of k draws.", best_of_k, {"k": Param(4, ge=1)})]
"""


@pytest.mark.parametrize(("model", "decoder"), [("gan", "generator"), ("vae", "vae_decoder")])
def test_an_initialiser_learns_which_decoder_it_starts(model, decoder, kit_models, face, tmp_path, monkeypatch):
    plugin = tmp_path / "best_of_k.py"
    plugin.write_text(textwrap.dedent(DECODER))
    log = tmp_path / "decoder.log"
    monkeypatch.setenv("DECODER_LOG", str(log))
    result = run("--plugin", plugin, "project", face, "--models", kit_models, "--model", model, "--init", "best-of-k",
                 "--steps", 1, "-o", tmp_path / "out")  # fmt: skip
    assert result.code == 0, result.stderr
    assert set(log.read_text().split()) == {decoder}  # the check image and the face: both told the same


class FusingBackend:
    """Runs a step as one request only when every term is facemath's own (a server's projector model)."""

    def describe(self):
        return "tfserving at test:1"

    def fused_objective(self, model, terms):
        return object() if all(c.provider.distribution == "facemath" for _, c, _ in terms) else None


def test_a_third_party_term_that_keeps_a_server_off_its_one_request_path_is_said_once(tmp_path):
    from facemath_core import LossTerm
    from facemath_core.host.components import Provider
    from facemath_core.projection.projector import LossSpec, _unfused_notes

    contextual = registry().get("loss", "contextual")
    tv = LossTerm(
        "tv",
        "h",
        lambda t, g, m, d: g,
        provider=Provider("facemath-tv-loss 1.0.0", "tv-loss", "facemath-tv-loss", "1.0.0"),
    )
    terms = [(LossSpec("contextual", 1.0), contextual, {}), (LossSpec("tv", 0.01), tv, {})]
    backend = FusingBackend()
    assert _unfused_notes(backend, "generator", terms, backend.fused_objective("generator", terms)) == [
        "loss 'tv' (facemath-tv-loss 1.0.0): not a term of tfserving at test:1's projector model, so each step takes "
        "the generator's and discriminator's requests (up to 3) instead of 1"
    ]
    fused = backend.fused_objective("generator", terms[:1])
    assert _unfused_notes(backend, "generator", terms[:1], fused) == []  # fused: nothing to say


def test_an_embedded_run_says_nothing(kit_models):
    from facemath_core.projection.projector import _unfused_notes
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    terms = [(None, registry().get("loss", "contextual"), {})]
    assert _unfused_notes(EmbeddedBackend(kit_models), "generator", terms, None) == []


@pytest.fixture(scope="module")
def served(kit_models):
    """The tiny models (with their projector) behind the stand-in TF Serving server, on loopback."""
    from facemath_core.serving.model_config import entries_for_folder
    from facemath_core.serving.standin import build_server

    server, port, _ = build_server(entries_for_folder(kit_models), "127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.slow
def test_a_third_party_loss_over_a_server_is_said_once(served, face, tmp_path):
    tv = Path(__file__).parents[2] / "examples" / "facemath-tv-loss" / "facemath_tv.py"
    result = run("--plugin", tv, "project", face, "--server", served, "-l", "tv", "--steps", 3, "-o", tmp_path / "a")
    assert result.code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: loss 'tv' (--plugin {tv}): not a term of tfserving at {served}'s projector model, so each step takes "
        f"the generator's and discriminator's requests (up to 3) instead of 1"
    ]
    plain = run("project", face, "--server", served, "--steps", 3, "-o", tmp_path / "b")
    assert plain.code == 0 and "note:" not in plain.stderr  # the built-in term runs as one request per step
