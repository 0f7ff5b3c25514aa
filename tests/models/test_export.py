"""Exported SavedModels, proven through the TF1 loader + Session path that tensorflow_model_server takes."""

import json

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.export import export_run, read_metadata, restore_run_models
from facemath_core.serving.session_model import SessionModel

RUN_OF_MODEL = {
    S.GENERATOR: "gan",
    S.DISCRIMINATOR: "gan",
    S.VAE_ENCODER: "vae",
    S.VAE_DECODER: "vae",
    S.ORACLE: "oracle",
    S.GAN_ENCODER: "encoder",
}


@pytest.fixture(scope="module")
def sessions(tiny_export):
    loaded = {name: SessionModel(tiny_export / name / "1") for name in S.MODEL_NAMES}
    yield loaded
    for model in loaded.values():
        model.close()


@pytest.fixture(scope="module")
def in_process(tiny_runs, tiny_export):  # tiny_export adds the encoder run (it inverts the exported generator)
    models = {}
    for run in tiny_runs.values():
        models.update(restore_run_models(run)[2])
    return models


def test_layout_is_tf_serving_s(tiny_export):
    for name in S.MODEL_NAMES:
        version = tiny_export / name / "1"
        assert (version / "saved_model.pb").exists() and (version / "variables" / "variables.index").exists()
        assert (version / "assets.extra" / "tf_serving_warmup_requests").exists()
    assert sorted(p.name for p in tiny_export.iterdir()) == sorted(S.MODEL_NAMES + S.COMPOSITE_NAMES)  # no leftovers


@pytest.mark.parametrize("name", S.MODEL_NAMES)
def test_signatures_are_the_public_api(sessions, name):
    defs = sessions[name].signature_defs
    for signature, spec in S.SIGNATURES[name].items():
        assert sorted(defs[signature].inputs) == sorted(spec.inputs), signature
        assert sorted(defs[signature].outputs) == sorted(spec.outputs), signature
        for alias in spec.inputs:
            tensor = defs[signature].inputs[alias]
            assert tensor.tensor_shape.dim[0].size == -1  # batch dimension first, any size
            if signature != S.METADATA or alias != S.METADATA_INDEX:
                assert tensor.dtype == 1  # DT_FLOAT


def _inputs(name, rng, batch=3):
    if name in (S.GENERATOR, S.VAE_DECODER):
        return {S.Z: rng.uniform(-1, 1, (batch, 8)).astype(np.float32)}
    return {S.IMAGES: rng.uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)}


@pytest.mark.parametrize("name", S.MODEL_NAMES)
def test_session_matches_the_in_process_model(sessions, in_process, name):
    rng = np.random.default_rng(0)
    inputs = _inputs(name, rng)
    served = sessions[name].run(S.DEFAULT, inputs)
    expected = in_process[name](next(iter(inputs.values())), training=False)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for alias, value in zip(S.SIGNATURES[name][S.DEFAULT].outputs, expected, strict=True):
        np.testing.assert_allclose(served[alias], np.asarray(value), rtol=1e-4, atol=1e-5, err_msg=alias)


@pytest.mark.parametrize("name", [S.GENERATOR, S.VAE_DECODER])
def test_vjp_matches_autodiff_of_the_in_process_model(sessions, in_process, name):
    import tensorflow as tf

    rng = np.random.default_rng(5)
    z = tf.constant(rng.uniform(-1, 1, (3, 8)).astype(np.float32))
    cotangent = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        images = in_process[name](z, training=False)
    expected = tape.gradient(images, z, output_gradients=tf.constant(cotangent)).numpy()
    served = sessions[name].run(S.VJP, {S.Z: z.numpy(), S.COTANGENT: cotangent})[S.Z_GRAD]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [S.GENERATOR, S.VAE_DECODER])
def test_vjp_matches_finite_differences(sessions, name):
    rng = np.random.default_rng(1)
    z = rng.uniform(-0.5, 0.5, (2, 8)).astype(np.float64)
    cotangent = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    out = sessions[name].run(S.VJP, {S.Z: z.astype(np.float32), S.COTANGENT: cotangent})
    np.testing.assert_allclose(out[S.IMAGES], sessions[name].run(S.DEFAULT, {S.Z: z.astype(np.float32)})[S.IMAGES])

    def objective(z_value):  # <cotangent, G(z)> per example
        images = sessions[name].run(S.DEFAULT, {S.Z: z_value.astype(np.float32)})[S.IMAGES].astype(np.float64)
        return np.sum(images * cotangent, axis=(1, 2, 3))

    # Along a few random directions; G bends quickly in z (tanh output), so the step must be small.
    eps = 1e-4
    for _ in range(4):
        direction = rng.normal(size=z.shape)
        numeric = (objective(z + eps * direction) - objective(z - eps * direction)) / (2 * eps)
        analytic = np.sum(out[S.Z_GRAD] * direction, axis=1)
        # Loose: a ReLU kink inside the step can shift a difference quotient; the exact check is the autodiff test.
        np.testing.assert_allclose(analytic, numeric, rtol=0.2, atol=0.1)


def test_vjp_is_per_example(sessions):
    """Batching may put another client's request beside ours: a row's gradient must not depend on the others."""
    rng = np.random.default_rng(2)
    z = rng.uniform(-1, 1, (4, 8)).astype(np.float32)
    cotangent = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    together = sessions[S.GENERATOR].run(S.VJP, {S.Z: z, S.COTANGENT: cotangent})[S.Z_GRAD]
    alone = sessions[S.GENERATOR].run(S.VJP, {S.Z: z[:1], S.COTANGENT: cotangent[:1]})[S.Z_GRAD]
    np.testing.assert_allclose(together[:1], alone, rtol=1e-4, atol=1e-6)


def test_discriminator_grad_matches_finite_differences(sessions):
    rng = np.random.default_rng(3)
    images = rng.uniform(-0.9, 0.9, (2, 32, 32, 3)).astype(np.float32)
    out = sessions[S.DISCRIMINATOR].run(S.GRAD, {S.IMAGES: images})
    direction = rng.normal(size=images.shape).astype(np.float32)
    eps = 1e-3

    def logits(x):
        return sessions[S.DISCRIMINATOR].run(S.DEFAULT, {S.IMAGES: x})[S.LOGITS].astype(np.float64)

    numeric = (logits(images + eps * direction) - logits(images - eps * direction)) / (2 * eps)
    analytic = np.sum(out[S.IMAGES_GRAD] * direction, axis=(1, 2, 3))
    np.testing.assert_allclose(analytic, numeric, rtol=0.2, atol=0.05)  # loose: LeakyReLU kinks; exact below


def test_discriminator_grad_matches_autodiff(sessions, in_process):
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(4).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = in_process[S.DISCRIMINATOR](images, training=False)
    expected = tape.gradient(logits, images).numpy()
    served = sessions[S.DISCRIMINATOR].run(S.GRAD, {S.IMAGES: images.numpy()})
    np.testing.assert_allclose(served[S.IMAGES_GRAD], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(served[S.LOGITS], logits.numpy(), rtol=1e-5, atol=1e-6)


def test_metadata_signature_and_file(sessions, tiny_export):
    answer = sessions[S.GENERATOR].run(S.METADATA, {S.METADATA_INDEX: np.zeros(2, np.float32)})
    assert len(answer[S.METADATA_JSON]) == 2
    metadata = json.loads(answer[S.METADATA_JSON][0])
    assert metadata == read_metadata(tiny_export / S.GENERATOR / "1")
    assert metadata["z_dim"] == 8 and metadata["image_size"] == 32 and metadata["z_distribution"] == "uniform"
    assert metadata["value_range"] == [-1.0, 1.0] and metadata["training"]["steps"] == 60
    assert metadata["facemath_version"]
    oracle = read_metadata(tiny_export / S.ORACLE / "1")
    assert oracle["attribute_names"][0] == "Smiling" and "Smiling" in oracle["held_out_accuracy"]


def test_warmup_records_cover_every_signature(tiny_export):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    for name in S.MODEL_NAMES:
        path = tiny_export / name / "1" / "assets.extra" / "tf_serving_warmup_requests"
        logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
        assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) == sorted(S.SIGNATURES[name])
        for log in logs:
            request = log.predict_log.request
            assert request.model_spec.name == name
            assert sorted(request.inputs) == sorted(S.SIGNATURES[name][request.model_spec.signature_name].inputs)


def test_existing_version_is_refused_and_nothing_is_overwritten(tiny_runs, tiny_export):
    before = (tiny_export / S.GENERATOR / "1" / "saved_model.pb").read_bytes()
    with pytest.raises(FacemathError, match="generator/1 already exists"):
        export_run(tiny_runs["gan"], tiny_export, version=1)
    assert (tiny_export / S.GENERATOR / "1" / "saved_model.pb").read_bytes() == before


def test_next_version_and_prefix(tiny_runs, tmp_path):
    assert [p.name for p in export_run(tiny_runs["oracle"], tmp_path)] == ["1"]
    assert [p.parent.name + "/" + p.name for p in export_run(tiny_runs["oracle"], tmp_path)] == ["attribute_oracle/2"]
    paths = export_run(tiny_runs["oracle"], tmp_path, prefix="celeba")
    assert [p.parent.name + "/" + p.name for p in paths] == ["celeba_attribute_oracle/1"]  # its own versions
    with pytest.raises(FacemathError, match="--prefix"):
        export_run(tiny_runs["oracle"], tmp_path, prefix="a b")


def test_run_without_checkpoint(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "gan", "arch": {}}))
    with pytest.raises(FacemathError, match="no checkpoint to export"):
        export_run(tmp_path, tmp_path / "out")


def test_a_failed_export_leaves_no_model_of_the_run(tiny_runs, tmp_path, monkeypatch):
    """The generator is written, then the discriminator's warmup fails: neither version appears, nothing is left."""
    from facemath_core.models import export

    original = export.write_warmup

    def fail_for_the_discriminator(path, name, base, cfg):
        if base == S.DISCRIMINATOR:
            raise OSError("disk full")
        original(path, name, base, cfg)

    monkeypatch.setattr(export, "write_warmup", fail_for_the_discriminator)
    with pytest.raises(OSError, match="disk full"):
        export_run(tiny_runs["gan"], tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(export, "write_warmup", original)
    assert [p.parent.name for p in export_run(tiny_runs["gan"], tmp_path)] == [
        S.GENERATOR,
        S.DISCRIMINATOR,
        S.PROJECTOR,
    ]


def test_every_kind_serves_its_networks_under_signature_names():
    """The kinds table (training and export both read it) names only models the signatures define, each once."""
    from facemath_core.models.kinds import KINDS

    served = [name for kind in KINDS.values() for name in kind.served.values()]
    assert sorted(served) == sorted(S.MODEL_NAMES)
