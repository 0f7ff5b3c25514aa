"""Training under tf.distribute strategies: the same numbers as one device, multi-worker resume, one-line errors.

Each strategy runs in its own `facemath train` process: logical CPU devices and collectives are configured once
per process, before TensorFlow sets up its devices, and must not leak into other tests.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from facemath_core.models.distribute import loopback_cluster

from ..support import TINY, facemath_process, run_facemath

pytestmark = pytest.mark.slow  # every test trains in `facemath train` processes

TINY_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
# Measured on 2 CPU cores: after 4 GAN steps, one device and 2 mirrored replicas differ by at most 1.3e-6 in a weight
# (float rounding: the all-reduce sums two half-batch gradients). 1e-4 leaves room for other CPUs' kernels.
TOLERANCE = 1e-4


def _checkpoint(run_dir, step):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{step}"))
    names = [k for k in reader.get_variable_to_shape_map() if "save_counter" not in k and "OBJECT_GRAPH" not in k]
    return {k: reader.get_tensor(k) for k in names}


def _assert_same_run(a, b, step):
    ta, tb = _checkpoint(a, step), _checkpoint(b, step)
    assert ta.keys() == tb.keys() and any("generator" in k for k in ta)
    worst = max(float(np.max(np.abs(ta[k].astype(np.float64) - tb[k]))) for k in ta if ta[k].dtype.kind == "f")
    assert worst < TOLERANCE, worst
    for k in ta:
        if ta[k].dtype.kind != "f":  # step counters and seed-generator states: exactly equal
            np.testing.assert_array_equal(ta[k], tb[k], err_msg=k)
    return worst


def _train(*args, env=None):
    common = ["--batch-size", "16", "--sample-every", "100", "--checkpoint-every", "2", *TINY_ARGS]
    return run_facemath("train", *args, *common, env=env)


def test_two_mirrored_cpu_replicas_train_as_one_device(train_faces, tmp_path):
    """The same 4 GAN steps on one device and on 2 logical CPUs: the same losses and the same weights."""
    one, mirrored = tmp_path / "one", tmp_path / "mirrored"
    for run, extra in ((one, []), (mirrored, ["--strategy", "mirrored", "--cpu-replicas", "2"])):
        result = _train("gan", "--data", str(train_faces), "--out", str(run), "--steps", "4", *extra)
        assert result.code == 0, result.stderr
    records = [json.loads((run / "run.json").read_text()) for run in (one, mirrored)]
    assert records[1]["placement"]["replicas"] == 2 and records[0]["placement"]["replicas"] == 1
    losses = records[0]["final_metrics"]
    gaps = {name: abs(records[1]["final_metrics"][name] - value) for name, value in losses.items()}
    assert losses.keys() == records[1]["final_metrics"].keys() and max(gaps.values()) < TOLERANCE, gaps
    print(f"largest loss difference, one vs mirrored: {max(gaps.values()):.2e}")
    print(f"largest weight difference, one vs mirrored: {_assert_same_run(one, mirrored, 4):.2e}")


def _multi_worker(args):
    """Two `facemath train --strategy multi-worker` processes on 127.0.0.1; their (returncode, stderr)."""
    cluster = loopback_cluster(2)
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(facemath_process("train", *args, env={"TF_CONFIG": config}))
    results = []
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=240)
            results.append((worker.returncode, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return results


def test_two_workers_train_checkpoint_and_resume(train_faces, tmp_path):
    """Two workers train 4 steps (checkpoints at 2 and 4, written by the chief only), then resume to 6: the run
    equals 6 steps on one device."""
    run, one = tmp_path / "multi", tmp_path / "one"
    common = ["--strategy", "multi-worker", "--batch-size", "16", "--sample-every", "100", "--checkpoint-every", "2"]
    for returncode, stderr in _multi_worker(
        ["gan", "--data", str(train_faces), "--out", str(run), "--steps", "4", *common, *TINY_ARGS]
    ):
        assert returncode == 0, stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    for returncode, stderr in _multi_worker(["gan", "--resume", str(run), "--steps", "6", *common]):
        assert returncode == 0, stderr
    record = json.loads((run / "run.json").read_text())
    assert record["steps_done"] == 6 and record["placement"]["replicas"] == 2
    result = _train("gan", "--data", str(train_faces), "--out", str(one), "--steps", "6")
    assert result.code == 0, result.stderr
    print(f"largest weight difference, one vs 2 workers: {_assert_same_run(one, run, 6):.2e}")


@pytest.mark.parametrize(
    "args, tf_config, message",
    [
        (["--strategy", "multi-worker"], None, "set TF_CONFIG"),
        (["--strategy", "multi-worker"], "{not json", "TF_CONFIG: not JSON"),
        (
            ["--strategy", "multi-worker"],
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}',
            "task 'worker' 3 is not in the cluster",
        ),
        (["--strategy", "mirrored", "--cpu-replicas", "3"], None, "--batch-size 16: the global batch must divide"),
        (["--cpu-replicas", "2"], None, "--cpu-replicas: only with --strategy mirrored"),
    ],
)
def test_bad_placements_are_one_line_errors(train_faces, tmp_path, args, tf_config, message):
    env = {"TF_CONFIG": tf_config} if tf_config else {}
    environ_has = "TF_CONFIG" in os.environ
    result = _train("gan", "--data", str(train_faces), "--out", str(tmp_path / "run"), *args, env=env)
    assert not environ_has
    assert result.code == 1 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


# --- --mixed-precision and --jit, on CPU (TensorFlow runs both there, slowly) -----------------------------------
# Stated tolerance: after 4 steps each loss within 5% (+0.01) of the float32, non-XLA run. Measured on CPU (GAN):
# mixed_float16 differs by < 0.1%; XLA by about 1.5% (its own kernels and fusions). A wrong loss scale (gradients
# left scaled by 2^15) or a policy that did not apply fails by far more.


def _relative_gaps(a, b):
    return {k: abs(a[k] - b[k]) / (abs(b[k]) + 0.2) for k in b}


def test_mixed_precision_and_xla_train_like_float32(train_faces, tmp_path):
    import tensorflow as tf

    from facemath_core.base.errors import FacemathError
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import Placement, TrainOptions
    from facemath_core.models.training import train

    options = TrainOptions(steps=4, batch_size=16, sample_every=100, checkpoint_every=100)
    runs = {}
    for name, placement in (
        ("float32", Placement()),
        ("mixed", Placement(mixed_precision=True)),
        ("xla", Placement(jit=True)),
    ):
        runs[name] = train("gan", str(train_faces), tmp_path / name, ArchConfig(**TINY), options, placement=placement)
    for name in ("mixed", "xla"):
        assert (
            runs[name]["steps_done"] == 4 and runs[name]["placement"][{"mixed": "mixed_precision", "xla": "jit"}[name]]
        )
        gaps = _relative_gaps(runs[name]["final_metrics"], runs["float32"]["final_metrics"])
        print(name, "largest relative loss difference:", f"{max(gaps.values()):.2e}")
        assert max(gaps.values()) < 0.05, (name, gaps)
    reader = tf.train.load_checkpoint(str(tmp_path / "mixed" / "checkpoints"))
    names = reader.get_variable_to_shape_map()
    assert any("dynamic_scale" in k for k in names)  # the optimizers were LossScaleOptimizers
    weights = [k for k in names if k.startswith(("generator/", "discriminator/")) and "seed_generator" not in k]
    assert weights and all(reader.get_variable_to_dtype_map()[k] == tf.float32 for k in weights)  # float32 weights
    with pytest.raises(FacemathError, match="trained with --mixed-precision; resume it with it too"):
        train("gan", "", tmp_path / "mixed", ArchConfig(), TrainOptions(steps=6), resume=True)


def test_mixed_precision_counts_skipped_steps(train_faces, tmp_path):
    """The VAE's summed reconstruction loss overflows float16 at the initial loss scale 2^15: those steps are
    skipped and the scale halved, and the run still counts every step."""
    import tensorflow as tf

    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import Placement, TrainOptions
    from facemath_core.models.training import train

    options = TrainOptions(steps=4, batch_size=16, sample_every=100, checkpoint_every=100)
    record = train(
        "vae",
        str(train_faces),
        tmp_path / "vae",
        ArchConfig(**TINY),
        options,
        placement=Placement(mixed_precision=True),
    )
    reader = tf.train.load_checkpoint(str(tmp_path / "vae" / "checkpoints"))
    scale = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "dynamic_scale" in k]
    print("loss scale after 4 steps:", scale)
    assert record["steps_done"] == 4 and scale and scale[0] < 2.0**15
