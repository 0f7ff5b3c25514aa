"""Every model-running command takes the shared model-source options; decoding uses the latents' own version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import line_height
from facemath_core.latent.latents import Latents, load_latents, save_latents

FACES = Path(__file__).parents[2] / "examples" / "faces"


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), np.int16) for p in sorted(folder.glob("*.png"))}


def test_decoding_uses_the_recorded_version_says_so_and_fails_when_it_is_gone(cli, tiny_export, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_export, models)
    z = np.random.default_rng(0).uniform(-1, 1, (2, 8)).astype(np.float32)
    latents = Latents(["a.png", "b.png"], z, "gan", "generator", 1, "projection", models={"generator": 1})
    save_latents(tmp_path / "l.npz", latents)
    base = ["render", str(tmp_path / "l.npz"), "--models", str(models)]

    only_v1 = cli(*base, "--out", str(tmp_path / "v1"))
    assert only_v1.code == 0 and not _errors(only_v1), only_v1.stderr
    # A newer generator arrives: a different network (the VAE decoder takes the same z).
    shutil.copytree(models / "vae_decoder" / "1", models / "generator" / "2")
    again = cli(*base, "--out", str(tmp_path / "again"))
    assert again.code == 0, again.stderr
    (note,) = _errors(again)
    assert note.startswith("note: ") and "generator version 1" in note and "newest: 2" in note
    assert _pixels(tmp_path / "again").keys() == {"a.png", "b.png"}
    for name, image in _pixels(tmp_path / "v1").items():
        assert np.abs(_pixels(tmp_path / "again")[name] - image).max() <= 1
    asked = cli(*base, "--model-version", "2", "--out", str(tmp_path / "v2"))
    assert asked.code == 0 and "decoding with version 2 as asked" in asked.stderr, asked.stderr
    assert np.abs(_pixels(tmp_path / "v2")["a.png"] - _pixels(tmp_path / "v1")["a.png"]).max() > 10

    shutil.rmtree(models / "generator" / "1")
    gone = cli(*base, "--out", str(tmp_path / "gone"))
    (error,) = _errors(gone)
    assert gone.code == 1 and "Traceback" not in gone.stderr
    assert error.startswith("error: ") and "generator version 1" in error and "it has 2" in error
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--label", "stable"], "only with --server"),
        (["--tls-ca", "ca.pem"], "only with --server"),
        (["--server", "localhost:1", "--models", "m"], "not both"),
        (["--server", "localhost:1", "--tls-cert", "c.pem"], "mutual TLS needs both"),
        (["--server", "localhost:1", "--tls-server-name", "x"], "needs TLS"),
        (["--model-version", "0"], "--model-version"),
    ],
)
def test_model_source_options_that_cannot_work_are_refused_up_front(cli, tmp_path, args, message):
    out = tmp_path / "out"
    result = cli("project", str(FACES / "000001.png"), "--out", str(out), *args)
    assert result.code == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def server(tiny_export):
    """The stand-in TF Serving server over the tiny models, in this process; its HOST:PORT."""
    from facemath_core.serving.model_config import entries_for_folder
    from facemath_core.serving.standin import build_server

    grpc_server, port, _ = build_server(entries_for_folder(tiny_export), port=0)
    yield f"127.0.0.1:{port}"
    grpc_server.stop(0)


@pytest.fixture(scope="module")
def encoded(cli, server, tiny_export, train_faces, tmp_path_factory):
    """Labelled faces encoded twice: through the server and in-process."""
    root = tmp_path_factory.mktemp("source")
    for name, source in (("remote", ["--server", server]), ("local", ["--models", str(tiny_export)])):
        result = cli("encode", str(train_faces), *source, "--out", str(root / name))
        assert result.code == 0, result.stderr
    return root


@pytest.mark.slow
def test_encode_and_render_through_the_server_match_embedded(cli, encoded, server, tiny_export, tmp_path):
    remote, local = load_latents(encoded / "remote" / "latents.npz"), load_latents(encoded / "local" / "latents.npz")
    np.testing.assert_allclose(remote.z, local.z, atol=1e-4)
    assert remote.config["backend"] == f"tfserving at {server}" and remote.model_version == 1
    names = "--names", ",".join(remote.names[:4])
    for name, source in (("remote", ["--server", server]), ("local", ["--models", str(tiny_export)])):
        file = str(encoded / "local" / "latents.npz")
        result = cli("render", file, *names, *source, "--out", str(tmp_path / name))
        assert result.code == 0, result.stderr
    remote_images, local_images = _pixels(tmp_path / "remote"), _pixels(tmp_path / "local")
    assert len(remote_images) == 4 and remote_images.keys() == local_images.keys()
    assert all(np.abs(remote_images[k] - local_images[k]).max() <= 1 for k in remote_images)


@pytest.mark.slow
def test_every_model_command_runs_through_the_server(cli, encoded, server, train_faces, tmp_path):
    latents = str(encoded / "remote" / "latents.npz")
    names = load_latents(latents).names
    a, b = Path(names[0]).stem, Path(names[1]).stem
    face = str(FACES / "000001.png")
    remote = ["--server", server, "--timeout", "30"]
    commands = {
        "project": ["project", face, "--steps", "2", "--out", str(tmp_path / "p")],
        "complete": ["complete", face, "--steps", "2", "--out", str(tmp_path / "c")],
        "interpolate": ["interpolate", a, b, "--latents", latents, "--frames", "3", "--out", str(tmp_path / "i.png")],
        "math": ["math", f"{a} + {b} - {a}", "--latents", latents, "--out", str(tmp_path / "m")],
        "analogy": ["analogy", a, b, a, "--latents", latents, "--size", "2", "--out", str(tmp_path / "j.png")],
        "attributes": ["attributes", "--latents", latents, "--out", str(tmp_path / "attr")],
        "compare": [
            "compare",
            "--data",
            str(train_faces),
            "--count",
            "40",
            "--steps",
            "2",
            "--trials",
            "2",
            "--out",
            str(tmp_path / "report"),
        ],  # fmt: skip
    }
    results = {name: cli(*args, *remote) for name, args in commands.items()}
    for name, result in results.items():
        assert result.code == 0, (name, result.stderr)
    assert f"with generator version 1 (tfserving at {server}" in results["project"].stdout
    assert (tmp_path / "p" / "latents.npz").exists() and (tmp_path / "c" / "latents.npz").exists()
    assert json.loads((tmp_path / "m" / "terms.json").read_text())["expression"] == f"{a} + {b} - {a}"
    width, height = Image.open(tmp_path / "j.png").size  # 2x2 faces of 32 px, drawn at 4x
    assert width == 2 + 2 * 130 and height == width + 2 * line_height()  # under a header, over a caption
    width, height = Image.open(tmp_path / "i.png").size  # 3 faces in a row
    assert width >= 3 * 32 and 2.5 * height < width < 3.5 * height
    assert (tmp_path / "attr" / "vectors.npz").exists() and (tmp_path / "report" / "report.md").exists()
    shown = cli("info", *remote)
    assert shown.code == 0 and f"models: tfserving at {server} (from --server)" in shown.stdout, shown.stderr
    assert "generator  serving 1" in shown.stdout
    # The model card comes through the metadata signature, as TF Serving answers it (models/cards.py).
    assert "      command   facemath train gan --data faces --out gan " in shown.stdout, shown.stdout


def _openssl(*args, cwd):
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate valid only for the name facemath.test, and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    root = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=facemath test CA", cwd=root)  # fmt: skip
    (root / "san.cnf").write_text("subjectAltName=DNS:facemath.test\n")
    for name, subject in (("server", "/CN=facemath.test"), ("client", "/CN=facemath client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=root)  # fmt: skip
        extra = ["-extfile", "san.cnf"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=root)  # fmt: skip
    return root


def test_mutual_tls_options_reach_the_server(cli, pki, tiny_export, tmp_path):
    """The server only accepts clients with a certificate from the CA, and its own certificate names only
    facemath.test, not 127.0.0.1: a render that succeeds used --tls-ca, --tls-cert/--tls-key and --tls-server-name."""
    import grpc

    from facemath_core.serving.model_config import entries_for_folder
    from facemath_core.serving.standin import build_server

    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    grpc_server, port, _ = build_server(entries_for_folder(tiny_export), port=0, credentials=credentials)
    try:
        z = np.random.default_rng(1).uniform(-1, 1, (2, 8)).astype(np.float32)
        save_latents(tmp_path / "l.npz", Latents(["a.png", "b.png"], z, "gan", "generator", 1, "projection"))
        tls = ["--tls-ca", str(pki / "ca.pem"), "--tls-cert", str(pki / "client.pem")]
        tls += ["--tls-key", str(pki / "client.key"), "--tls-server-name", "facemath.test"]
        remote = cli("render", str(tmp_path / "l.npz"), "--server", f"127.0.0.1:{port}", *tls,
                         "--out", str(tmp_path / "remote"))  # fmt: skip
        assert remote.code == 0, remote.stderr
    finally:
        grpc_server.stop(0)
    local = cli("render", str(tmp_path / "l.npz"), "--models", str(tiny_export), "--out", str(tmp_path / "local"))
    assert local.code == 0, local.stderr
    remote_images, local_images = _pixels(tmp_path / "remote"), _pixels(tmp_path / "local")
    assert remote_images.keys() == local_images.keys() == {"a.png", "b.png"}
    assert all(np.abs(remote_images[k] - local_images[k]).max() <= 1 for k in remote_images)


@pytest.mark.slow
def test_resume_goes_on_with_the_checkpoints_model_versions(cli, tiny_export, tmp_path):
    """A newer generator exported between a run and its --resume must not change the objective halfway: the
    resumed run ends where an uninterrupted run on the original version ends, and says that it kept the version."""
    models = tmp_path / "models"
    shutil.copytree(tiny_export, models)
    faces = [str(FACES / "000001.png"), str(FACES / "000002.png")]
    common = ["--models", str(models), "--seed", "3"]
    straight = cli("project", *faces, *common, "--steps", "8", "--out", str(tmp_path / "straight"))
    assert straight.code == 0, straight.stderr
    first = cli("project", *faces, *common, "--steps", "4", "--out", str(tmp_path / "split"))
    assert first.code == 0, first.stderr

    shutil.copytree(models / "vae_decoder" / "1", models / "generator" / "2")  # a different network, same z
    resumed = cli("project", "--resume", str(tmp_path / "split"), "--models", str(models), "--steps", "8")
    assert resumed.code == 0, resumed.stderr
    notes = [line for line in _errors(resumed) if line.startswith("note: ")]
    assert len(notes) == 1 and "generator version 1" in notes[0] and "newest: 2" in notes[0], resumed.stderr
    done, reference = (
        load_latents(tmp_path / "split" / "latents.npz"),
        load_latents(tmp_path / "straight" / "latents.npz"),
    )
    assert done.model_version == 1 and done.models["generator"] == 1
    np.testing.assert_allclose(done.z, reference.z, atol=1e-6)

    shutil.rmtree(models / "generator" / "1")
    gone = cli("project", "--resume", str(tmp_path / "split"), "--models", str(models), "--steps", "10")
    (error,) = _errors(gone)
    assert gone.code == 1 and "Traceback" not in gone.stderr
    assert error.startswith("error: ") and "resume.npz" in error and "generator version 1" in error
