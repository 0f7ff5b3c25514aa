"""Exported SavedModels, proven through the TF1 loader + Session path that tensorflow_model_server takes."""

import json

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.export import export_run, exported_signatures, read_metadata, restore_run_models
from facemath_core.serving.session_model import SessionModel

RUN_OF_MODEL = {
    S.GENERATOR: "gan",
    S.DISCRIMINATOR: "gan",
    S.VAE_ENCODER: "vae",
    S.VAE_DECODER: "vae",
    S.ORACLE: "oracle",
    S.GAN_ENCODER: "encoder",
    S.VAEGAN_ENCODER: "vaegan",
    S.VAEGAN_DECODER: "vaegan",
    S.VAEGAN_DISCRIMINATOR: "vaegan",
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
    if name in (S.GENERATOR, S.VAE_DECODER, S.VAEGAN_DECODER):
        return {S.Z: rng.uniform(-1, 1, (batch, 8)).astype(np.float32)}
    return {S.IMAGES: rng.uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)}


@pytest.mark.parametrize("name", S.MODEL_NAMES)
def test_session_matches_the_in_process_model(sessions, in_process, name):
    rng = np.random.default_rng(0)
    inputs = _inputs(name, rng)
    served = sessions[name].run(S.DEFAULT, inputs)
    expected = in_process[name](next(iter(inputs.values())), training=False)
    if not isinstance(expected, dict):  # a network with named outputs (VAE-GAN discriminator, oracle) names them
        expected = expected if isinstance(expected, (list, tuple)) else [expected]
        expected = dict(zip(S.SIGNATURES[name][S.DEFAULT].outputs, expected, strict=True))
    for alias in S.SIGNATURES[name][S.DEFAULT].outputs:
        np.testing.assert_allclose(served[alias], np.asarray(expected[alias]), rtol=1e-4, atol=1e-5, err_msg=alias)


@pytest.mark.parametrize("name", [S.GENERATOR, S.VAE_DECODER, S.VAEGAN_DECODER])
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


# Every gradient signature, its inputs, and what it differentiates: (output of serving_default, cotangent input).
GRADIENTS = {
    S.GENERATOR: (S.VJP, S.Z, S.IMAGES, S.COTANGENT),
    S.VAE_DECODER: (S.VJP, S.Z, S.IMAGES, S.COTANGENT),
    S.DISCRIMINATOR: (S.GRAD, S.IMAGES, S.LOGITS, None),  # d sum(logits) / d images
    S.GAN_ENCODER: (S.VJP, S.IMAGES, S.Z, S.Z_COTANGENT),
    S.VAEGAN_DECODER: (S.VJP, S.Z, S.IMAGES, S.COTANGENT),
    S.VAEGAN_DISCRIMINATOR: (S.GRAD, S.IMAGES, S.LOGITS, None),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_gradient_signatures_equal_a_tape_through_the_default_signature(sessions, tiny_export, name):
    """The exact reference: TF2's loader and a GradientTape through `serving_default` of the same SavedModel,
    against the gradient signature as tensorflow_model_server runs it (the TF1 loader and a Session)."""
    import tensorflow as tf

    signature, x_name, y_name, cotangent_name = GRADIENTS[name]
    rng = np.random.default_rng(6)
    x = _inputs(S.GENERATOR if x_name == S.Z else S.DISCRIMINATOR, rng)[x_name]
    loaded = tf.saved_model.load(str(tiny_export / name / "1"))  # held: the signature needs its variables
    default = loaded.signatures[S.DEFAULT]
    x_tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        y = default(**{x_name: x_tensor})[y_name]
    cotangent = rng.normal(size=y.shape).astype(np.float32) if cotangent_name else np.ones(y.shape, np.float32)
    expected = tape.gradient(y, x_tensor, output_gradients=tf.constant(cotangent)).numpy()
    feed = {x_name: x, **({cotangent_name: cotangent} if cotangent_name else {})}
    served = sessions[name].run(signature, feed)
    gradient = served[S.Z_GRAD if x_name == S.Z else S.IMAGES_GRAD]
    assert np.abs(expected).max() > 1e-3  # a gradient that is there, not one that vanished on both sides
    np.testing.assert_allclose(served[y_name], y.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


# Central differences on the float32 networks: below 1e-4, float32 round-off of the outputs dominates (measured).
STEPS = (1e-1, 1e-2, 1e-3, 1e-4)


def difference_errors(f, x, gradient, axes, rng, directions=6):
    """|central difference - the gradient's directional derivative| at each of STEPS: the median over random
    directions and rows, computed in float64 from the model's float32 outputs."""
    errors = []
    for _ in range(directions):
        direction = rng.normal(size=x.shape)
        exact = np.sum(gradient.astype(np.float64) * direction, axis=axes)
        errors.append([np.abs((f(x + h * direction) - f(x - h * direction)) / (2 * h) - exact) for h in STEPS])
    return np.median(np.array(errors), axis=(0, 2))


def assert_differences_converge(errors, scale):
    """The quotients approach the gradient as the step shrinks: every tenfold smaller step is closer, three decades
    gain at least 30x, and the last is within 0.5% of the gradient's size. ReLU kinks inside a step make these
    networks' quotients first order in h (on the tiny models: about 10x a decade, measured), not h^2."""
    assert all(small < big for big, small in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] * 30 <= errors[0], errors
    assert errors[-1] <= 5e-3 * scale, (errors, scale)


@pytest.mark.parametrize("name", [S.GENERATOR, S.VAE_DECODER])
def test_vjp_finite_differences_converge(sessions, name):
    rng = np.random.default_rng(1)
    z = rng.uniform(-0.5, 0.5, (2, 8))
    cotangent = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    out = sessions[name].run(S.VJP, {S.Z: z.astype(np.float32), S.COTANGENT: cotangent})
    np.testing.assert_allclose(out[S.IMAGES], sessions[name].run(S.DEFAULT, {S.Z: z.astype(np.float32)})[S.IMAGES])

    def objective(z_value):  # <cotangent, G(z)> per example
        images = sessions[name].run(S.DEFAULT, {S.Z: z_value.astype(np.float32)})[S.IMAGES].astype(np.float64)
        return np.sum(images * cotangent, axis=(1, 2, 3))

    errors = difference_errors(objective, z, out[S.Z_GRAD], 1, rng)
    assert_differences_converge(errors, np.abs(out[S.Z_GRAD]).sum(axis=1).mean())


def test_vjp_is_per_example(sessions):
    """Batching may put another client's request beside ours: a row's gradient must not depend on the others."""
    rng = np.random.default_rng(2)
    z = rng.uniform(-1, 1, (4, 8)).astype(np.float32)
    cotangent = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    together = sessions[S.GENERATOR].run(S.VJP, {S.Z: z, S.COTANGENT: cotangent})[S.Z_GRAD]
    alone = sessions[S.GENERATOR].run(S.VJP, {S.Z: z[:1], S.COTANGENT: cotangent[:1]})[S.Z_GRAD]
    np.testing.assert_allclose(together[:1], alone, rtol=1e-4, atol=1e-6)


def test_discriminator_grad_finite_differences_converge(sessions):
    rng = np.random.default_rng(3)
    images = rng.uniform(-0.9, 0.9, (2, 32, 32, 3))
    out = sessions[S.DISCRIMINATOR].run(S.GRAD, {S.IMAGES: images.astype(np.float32)})

    def logits(x):
        return sessions[S.DISCRIMINATOR].run(S.DEFAULT, {S.IMAGES: x.astype(np.float32)})[S.LOGITS].astype(np.float64)

    errors = difference_errors(lambda x: logits(x).reshape(len(x)), images, out[S.IMAGES_GRAD], (1, 2, 3), rng)
    assert_differences_converge(errors, np.abs(out[S.IMAGES_GRAD]).sum(axis=(1, 2, 3)).mean())


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
        signatures = exported_signatures(name)  # the required ones and those newer exports add (oracle features)
        assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) == sorted(signatures)
        for log in logs:
            request = log.predict_log.request
            assert request.model_spec.name == name
            assert sorted(request.inputs) == sorted(signatures[request.model_spec.signature_name].inputs)


def test_existing_version_is_refused_and_nothing_is_overwritten(tiny_runs, tiny_export):
    before = (tiny_export / S.GENERATOR / "1" / "saved_model.pb").read_bytes()
    with pytest.raises(FacemathError, match="generator/1 already exists"):
        export_run(tiny_runs["gan"], tiny_export, version=1)
    assert (tiny_export / S.GENERATOR / "1" / "saved_model.pb").read_bytes() == before


@pytest.mark.slow
def test_next_version_and_prefix(tiny_runs, tmp_path):
    assert [p.name for p in export_run(tiny_runs["oracle"], tmp_path)] == ["1"]
    assert [p.parent.name + "/" + p.name for p in export_run(tiny_runs["oracle"], tmp_path)] == ["attribute_oracle/2"]
    paths = export_run(tiny_runs["oracle"], tmp_path, prefix="celeba")
    assert [p.parent.name + "/" + p.name for p in paths] == ["celeba_attribute_oracle/1"]  # its own versions
    with pytest.raises(FacemathError, match="--prefix"):
        export_run(tiny_runs["oracle"], tmp_path, prefix="a b")


def test_run_without_checkpoint(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "gan", "arch": {}, "options": {}, "data": "faces"}))
    with pytest.raises(FacemathError, match="no checkpoint to export"):
        export_run(tmp_path, tmp_path / "out")


@pytest.mark.slow
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
