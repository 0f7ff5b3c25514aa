"""Export trained networks as TF Serving SavedModels: `<base>/<model>/<version>/`.

Each model gets the signatures of `facemath_core.base.signatures`, a `metadata` signature and file describing it (z size
and prior, image size, value range, attribute names, training data and steps, facemath version) and warmup records
for every signature in `assets.extra/tf_serving_warmup_requests`.

Keras 3 models are exported with `keras.export.ExportArchive`: `tf.saved_model.save` of a tf.Module wrapping a
Keras 3 model wrote SavedModels whose variables the TF1 loader (the path TF Serving takes) could not find.
A version folder appears only when complete (`files.atomic_dir`), and the models of one run appear together.
Which networks a run has, and the names they are served under, come from `model_kinds.KINDS`.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir, folder_lock
from facemath_core.base.version import __version__
from facemath_core.data.align import training_template
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.cards import check_portable, facemath_commit, portable_options, run_card
from facemath_core.models.encoders import inverted_generator
from facemath_core.models.kinds import KINDS
from facemath_core.models.layout import (  # noqa: F401 (read_metadata: re-exported)
    existing_versions,
    load_saved_model,
    read_metadata,
)
from facemath_core.models.projector_export import write_projector
from facemath_core.models.runs import TrainOptions, checkpoint_problem, latest_checkpoint, read_run, run_arch

WARMUP_FILE = "tf_serving_warmup_requests"


def restore_run_models(run_dir: str | Path) -> tuple[dict, ArchConfig, dict]:
    """Rebuild the networks of a training run and load its latest checkpoint: (record, config, {name: model})."""
    import tensorflow as tf

    run_dir = Path(run_dir)
    record = read_run(run_dir)
    cfg = run_arch(record, run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise FacemathError(f"{run_dir}: the run has no checkpoint to export (train it first)")
    kind = KINDS.get(record["kind"])
    if kind is None:
        raise FacemathError(f"{run_dir}/run.json: unknown kind {record['kind']!r} (known: {', '.join(KINDS)})")
    networks = kind.build(cfg, TrainOptions()).networks()
    # Optimizer state and the noise's state are in the checkpoint too; only the networks are needed here.
    try:
        tf.train.Checkpoint(**networks).restore(latest).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as exc:
        raise FacemathError(checkpoint_problem(run_dir, latest, exc)) from None
    record = {**record, "checkpoint": Path(latest).name, "run": str(run_dir.resolve())}
    return record, cfg, {kind.served[key]: network for key, network in networks.items()}


def model_metadata(name: str, cfg: ArchConfig, record: dict) -> dict:
    """What an export says about itself: shapes and prior, the training run (its data and run by name, never a
    path of this machine) and its model card (models/cards.py)."""
    metadata = {
        "model": name,
        "family": record["kind"],
        "z_dim": cfg.z_dim,
        "z_distribution": cfg.z_distribution,
        "image_size": cfg.image_size,
        "value_range": [-1.0, 1.0],
        "attribute_names": list(cfg.attribute_names),
        "arch": cfg.to_dict(),
        "training": {
            "data": Path(record["data"]).name if record.get("data") else None,
            "data_images": record.get("data_images"),
            "steps": record.get("steps_done"),
            "wall_seconds": round(float(record.get("wall_seconds", 0.0)), 1),
            "checkpoint": record.get("checkpoint"),
            "run": Path(record["run"]).name if record.get("run") else None,  # encoders.check_encoder compares it
            "options": portable_options(record.get("options") or {}),
        },
        "card": run_card(record, record.get("data"), record.get("run") or ""),
        **_landmarks(record, cfg),
        "held_out_accuracy": record.get("held_out_accuracy"),
        **_inverts(record),
        "facemath_version": __version__,
        "signatures": {
            sig: {"inputs": list(s.inputs), "outputs": list(s.outputs)}
            for sig, s in exported_signatures(_base_name(name)).items()
        },
    }
    check_portable(metadata, f"export of {name}")
    return metadata


def _landmarks(record: dict, cfg: ArchConfig) -> dict:
    """The landmark template of the run's training faces (`data.align.training_template`): where `--align` puts the
    eyes, nose and mouth of a photo's face so that it is framed as the model's training faces were."""
    template = training_template(record["data"], cfg.image_size) if record.get("data") else None
    return {} if template is None else {"landmarks": template.record()}


def _inverts(record: dict) -> dict:
    """A gan_encoder's metadata names the generator and version it inverts (`encoders.check_encoder` reads it)."""

    generator = inverted_generator(record.get("options") or {})
    return {"generator": generator} if generator else {}


def _base_name(name: str) -> str:
    base = S.base_name(name)
    if base is None or base in S.COMPOSITE_NAMES:
        raise FacemathError(f"{name!r} is not a facemath model name ({', '.join(S.MODEL_NAMES)})")
    return base


def exported_signatures(base: str) -> dict[str, S.Signature]:
    """Every signature an export of `base` has: the required ones and those newer exports add."""
    return {**S.SIGNATURES[base], **S.OPTIONAL_SIGNATURES.get(base, {})}


def _named_outputs(base: str, model, x) -> dict:
    """A network's outputs by tensor alias, in inference mode: a network with several named outputs (the VAE-GAN
    discriminator, the oracle) gives them by name; another gives its outputs in the order of its `serving_default`
    signature's (the VAE encoder: z_mean, z_log_var)."""
    y = model(x, training=False)
    if isinstance(y, dict):
        return y
    y = list(y) if isinstance(y, list | tuple) else [y]
    return dict(zip(S.SIGNATURES[base][S.DEFAULT].outputs, y, strict=True))


def _endpoint(base: str, model, signature: S.Signature):
    """The tf.function body of one signature, from its tensor names alone: a signature with an `<input>_grad`
    output is a vector-Jacobian product of its other output for its first input (the upstream gradient is its
    second input, if any, else ones: d logit / d image); any other is the network's outputs it names. So a model
    kind's signatures in `signatures.py` are all export needs to know of it."""
    import tensorflow as tf

    x_alias = signature.inputs[0]
    grad_alias = f"{x_alias}_grad"
    if grad_alias not in signature.outputs:

        def forward(x):
            outputs = _named_outputs(base, model, x)
            return {alias: outputs[alias] for alias in signature.outputs}

        return forward
    (y_alias,) = [alias for alias in signature.outputs if alias != grad_alias]

    def vjp(x, cotangent=None):
        # One backward pass gives every example's own gradient: examples do not interact in inference mode.
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = _named_outputs(base, model, x)[y_alias]
        return {y_alias: y, grad_alias: tape.gradient(y, x, output_gradients=cotangent)}

    return vjp


def _endpoints(base: str, model, cfg: ArchConfig, metadata_json: str):
    """The tf.functions to export for one model, by signature name, each with its input signature."""
    import tensorflow as tf

    size, zdim = cfg.image_size, cfg.z_dim
    specs = {
        S.Z: [None, zdim],
        S.Z_COTANGENT: [None, zdim],
        S.IMAGES: [None, size, size, 3],
        S.COTANGENT: [None, size, size, 3],
        S.METADATA_INDEX: [None],
    }

    def metadata(index):
        return {S.METADATA_JSON: tf.fill(tf.shape(index), tf.constant(metadata_json))}

    table = {}
    for name, signature in exported_signatures(base).items():
        if name == S.METADATA:
            continue
        spec = [tf.TensorSpec(specs[alias], tf.float32, name=alias) for alias in signature.inputs]
        table[name] = (_endpoint(base, model, signature), spec)
    return {
        **table,
        S.METADATA: (metadata, [tf.TensorSpec(specs[S.METADATA_INDEX], tf.float32, name=S.METADATA_INDEX)]),
    }


def _warmup_inputs(base: str, cfg: ArchConfig, signature: str) -> dict[str, np.ndarray]:
    shapes = {
        S.Z: (1, cfg.z_dim),
        S.IMAGES: (1, cfg.image_size, cfg.image_size, 3),
        S.COTANGENT: (1, cfg.image_size, cfg.image_size, 3),
        S.Z_COTANGENT: (1, cfg.z_dim),
        S.METADATA_INDEX: (1,),
    }
    return {alias: np.zeros(shapes[alias], np.float32) for alias in exported_signatures(base)[signature].inputs}


def write_warmup(path: Path, name: str, base: str, cfg: ArchConfig) -> None:
    """One PredictionLog per signature, so a server pays each signature's graph set-up before real traffic."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in exported_signatures(base):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            for alias, value in _warmup_inputs(base, cfg, signature).items():
                request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def write_saved_model(model, name: str, cfg: ArchConfig, metadata: dict, target: Path) -> None:
    """Write one SavedModel (signatures, metadata, warmup) into the folder `target`."""
    import keras

    base = _base_name(name)
    metadata_json = json.dumps(metadata, sort_keys=True)
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoints capture every variable they use, and tracking the model as well
    # would save each weight twice (once as the Keras variable, once as the captured tf.Variable).
    endpoints = _endpoints(base, model, cfg, metadata_json)
    # serving_default first: ExportArchive also aliases the first endpoint as the default.
    for signature in sorted(endpoints, key=lambda s: s != S.DEFAULT):
        fn, spec = endpoints[signature]
        archive.add_endpoint(name=signature, fn=fn, input_signature=spec)
    archive.write_out(str(target), verbose=False)
    extra = target / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / S.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    write_warmup(extra / WARMUP_FILE, name, base, cfg)


# TF Serving reads a version folder's name with absl::SimpleAtoi into an int64_t and skips a name that does not
# parse, overflow included (tensorflow/serving@9d981c5, tensorflow_serving/sources/storage_path/
# file_system_storage_path_source.cc:87-89, ParseVersionNumber): a folder above 2^63 - 1 would never be served.
MAX_VERSION = 2**63 - 1


def check_version(version: int | None) -> None:
    """A version TF Serving can serve: a whole number from 1 to 2^63 - 1 (None: the next one, checked later)."""
    if version is None:
        return
    if version < 1:
        raise FacemathError(f"--version {version}: TF Serving versions are positive integers")
    if version > MAX_VERSION:
        raise FacemathError(
            f"--version {version}: above {MAX_VERSION} (2^63 - 1), the largest version TF Serving reads "
            f"(a larger folder name is skipped as not a version)"
        )


def export_run(run_dir: str | Path, to: str | Path, version: int | None = None, prefix: str = "") -> list[Path]:
    """Export every network of a run; returns the version folders written.

    Every model is built in its own `atomic_dir`; the folders are renamed into place only when all of them are
    written, so a failure leaves the model base path as it was. An existing version is never overwritten.
    """
    if prefix and not prefix.replace("-", "").replace("_", "").isalnum():
        raise FacemathError(f"--prefix {prefix!r}: use letters, digits, '-' and '_'")
    check_version(version)
    record, cfg, models = restore_run_models(run_dir)
    to = Path(to)
    names = {base: S.model_name(base, prefix) for base in models}
    if S.GENERATOR in models:  # with the composite projector built from this generator + discriminator
        names[S.PROJECTOR] = S.model_name(S.PROJECTOR, prefix)
    # Another export or deploy into the same base path waits for this one: both would pick the same new version
    # (or rewrite models.config from the same old copy), and the later rename would replace the earlier result.
    with folder_lock(to, "--to"):
        if version is None:
            version = 1 + max([0] + [v for n in names.values() for v in existing_versions(to / n)])
            check_version(version)
        for name in names.values():
            if (to / name / str(version)).exists():
                raise FacemathError(f"--to {to}: {name}/{version} already exists; choose another --version")
        written, staged = [], {}
        with contextlib.ExitStack() as publish:  # leaving it renames every folder into place, or removes every one
            for base, model in models.items():
                name = names[base]
                final = to / name / str(version)
                folder = publish.enter_context(atomic_dir(final))
                write_saved_model(model, name, cfg, model_metadata(name, cfg, record), folder)
                written.append(final)
                staged[base] = folder  # where it is until published: the projector is built from it
            if S.PROJECTOR in names:
                final = to / S.model_name(S.PROJECTOR, prefix) / str(version)
                folder = publish.enter_context(atomic_dir(final))
                write_projector(staged[S.GENERATOR], staged[S.DISCRIMINATOR], folder, final.parent.name, version)
                written.append(final)
    return written


def _by_layer_rank(variables: dict) -> dict:
    """Variables keyed by layer and variable name, an unnamed layer by its rank among its kind: Keras numbers the
    layers it names itself in the order a process creates them (`batch_normalization_12`), so the same network
    built in another process has other numbers but the same order."""
    layers = {path.rsplit("/", 1)[0] for path in variables}
    kinds: dict[str, list[tuple[int, str]]] = {}
    for layer in layers:
        match = re.fullmatch(r"(.+?)(?:_(\d+))?", layer)
        kinds.setdefault(match.group(1), []).append((int(match.group(2) or -1), layer))
    rank = {layer: f"{kind}#{i}" for kind, members in kinds.items() for i, (_, layer) in enumerate(sorted(members))}
    return {
        f"{rank[path.rsplit('/', 1)[0]]}/{path.rsplit('/', 1)[1]}": variable for path, variable in variables.items()
    }


def reexport(version_dir: str | Path, to: str | Path, version: int | None = None, note: str = "") -> Path:
    """Write an exported model again, as a new version beside it, with the signatures this facemath exports for it
    (one added since, such as the oracle's `features`), its weights read from the export itself: for a model whose
    training run is gone. The network is rebuilt from the metadata's architecture and each of its weights is the
    export's variable of the same path (all of them, or nothing is written); the metadata and its card are kept,
    with `note` added to the card. Returns the new version folder."""
    version_dir = Path(version_dir)
    metadata = read_metadata(version_dir)
    name = metadata.get("model") or version_dir.parent.name
    base = _base_name(name)
    cfg = ArchConfig.from_dict(metadata["arch"])
    kind = KINDS.get(metadata.get("family", ""))
    if kind is None:
        raise FacemathError(
            f"{version_dir}: family {metadata.get('family')!r} is not a kind of run ({', '.join(KINDS)})"
        )
    (network,) = [
        net for key, net in kind.build(cfg, TrainOptions()).networks().items() if kind.served.get(key) == base
    ]
    loaded = load_saved_model(version_dir)
    saved = _by_layer_rank({v.name.split(":")[0]: v for fn in loaded.signatures.values() for v in fn.variables})
    ours = _by_layer_rank({w.path: w for w in network.weights})
    missing = [key for key, w in ours.items() if key not in saved or tuple(saved[key].shape) != tuple(w.shape)]
    if missing:
        missing = [key.replace("#0/", "/") for key in missing[:3]]
        raise FacemathError(f"{version_dir}: the export has no weights for {', '.join(missing)} of the {base}")
    for key, weight in ours.items():
        weight.assign(saved[key].numpy())
    card = {**(metadata.get("card") or {}), "facemath": {"version": __version__, "commit": facemath_commit()}}
    if note:
        card["note"] = f"{card['note']}; {note}" if card.get("note") else note
    metadata = {
        **metadata,
        "card": card,
        "facemath_version": __version__,
        "signatures": {
            sig: {"inputs": list(s.inputs), "outputs": list(s.outputs)} for sig, s in exported_signatures(base).items()
        },
    }
    check_portable(metadata, f"export of {name}")
    to = Path(to)
    with folder_lock(to, "--to"):
        version = version or 1 + max(existing_versions(to / name))
        check_version(version)
        final = to / name / str(version)
        if final.exists():
            raise FacemathError(f"--to {to}: {name}/{version} already exists; choose another --version")
        with atomic_dir(final) as folder:
            write_saved_model(network, name, cfg, metadata, folder)
    return final
