"""`facemath deploy`: put exported model versions under a TF Serving model base path and describe them in
models.config; optionally roll them out to a fleet of running servers, moving labels only once every replica has
the new version.

What it promises (docs/deploy.md):
- Everything is checked before the first byte is copied: the source models and versions (each version to copy is
  loaded the way the server loads it, so a SavedModel without its variables is refused), symlinks, the target
  folder (writable, not a file), the existing models.config (UTF-8, a ModelServerConfig), versions already there.
- Writers of one model base path take turns: an OS lock on the folder (`files.folder_lock`) is held while
  models.config is read and written and versions are published, so two deploys (or a deploy and an export) never
  lose each other's entries.
- Entries of models.config that it does not deploy are written back unchanged (the message is round-tripped, not
  re-derived); of its own entries it changes only base_path, platform, version policy and its label.
- A version already deployed with other content is refused unless `replace`; versions appear in one rename.
- A label never points at a version some replica has not loaded. TF Serving checks labels against the versions
  AVAILABLE before it loads anything, and stores the new config first (server_core.cc:477-479 at tag 2.19.1,
  :512-514 at commit 9d981c5), so a polled file that adds a version and moves a label onto it in one step is
  refused on every poll and the version never loads: the replica is stranded. So a label MOVE is written only by
  a rollout (`--reload` for every replica, or `dns:///SERVICE:PORT` for all of them): first the new versions with
  the labels where they were, then, once every replica reports every new version AVAILABLE, the labels.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir, atomic_file, folder_lock
from facemath_core.models.layout import existing_versions
from facemath_core.serving.backends.tfserving import AVAILABLE_STATE, open_channel, tls_failure
from facemath_core.serving.model_config import format_config, read_config_proto
from facemath_core.serving.session_model import SessionModel

CONFIG_FILE = "models.config"
KEEP_VERSIONS = 2  # serve the newest two: a rollout can drain the old one while the new one takes traffic


@dataclass
class DeployResult:
    copied: list[Path]  # version folders written (new or replaced)
    config_path: Path
    config: object  # the ModelServerConfig written to config_path
    deployed: dict[str, int] = field(default_factory=dict)  # model name -> version deployed
    label: str | None = None
    pending_labels: list[str] = field(default_factory=list)  # "label of model: v1 -> v2" not moved yet
    base_path_in_server: str | None = None


def deploy(
    models: str | Path,
    to: str | Path,
    version: int | None = None,
    label: str | None = None,
    base_path_in_server: str | None = None,
    replace: bool = False,
    rollout: bool = False,
) -> DeployResult:
    """Copy each model's version (the newest, or `version`) to `to/<name>/<version>/` and write
    `to/models.config`. Validates everything first; see the module docstring.

    The label: a new one (not in models.config yet) is written at once unless `rollout` (a server started with
    --allow_version_labels_for_unavailable_models accepts it); a move is left pending (`pending_labels`) for
    `roll_out` to make once every replica has the version."""
    source, target = Path(models), Path(to)
    plan = _plan(source, version, label)
    _check_target(target, [name for name, _ in plan])
    config_path = target / CONFIG_FILE
    if config_path.is_dir():
        raise FacemathError(f"--to {target}: {config_path} is a folder, not a models.config file")
    for name, chosen in plan:
        _check_symlinks(source / name / str(chosen))
    with folder_lock(target, "--to"):
        old = read_config_proto(config_path) if config_path.exists() else None
        to_copy = []
        for name, chosen in plan:
            final_dir = target / name / str(chosen)
            if final_dir.exists():
                if _digest(final_dir) == _digest(source / name / str(chosen)):
                    continue  # already deployed: nothing to do
                if not replace:
                    raise FacemathError(
                        f"--to {target}: {name}/{chosen} is already deployed with different content; export a new "
                        f"version (a server never reloads a version it has loaded), or pass --replace"
                    )
            to_copy.append((name, chosen))
        for name, chosen in to_copy:
            _check_loads(source, name, chosen)
        written = _config(old, plan, label, target, base_path_in_server, move=False, add=not rollout)
        copied = []
        try:
            for name, chosen in to_copy:
                final_dir = target / name / str(chosen)
                with atomic_dir(final_dir) as tmp:
                    shutil.copytree(source / name / str(chosen), tmp, dirs_exist_ok=True)
                copied.append(final_dir)
            write_config(config_path, written)
        except (OSError, shutil.Error) as exc:  # e.g. the disk filled up: no version is half-copied (atomic_dir)
            done = ", ".join(str(p.relative_to(target)) for p in copied) or "none"
            raise FacemathError(
                f"--to {target}: deploy stopped ({' '.join(str(exc).split())[:200]}); versions completed: {done}; "
                f"models.config unchanged"
            ) from None
    return DeployResult(
        copied, config_path, written, dict(plan), label, _label_moves(old, plan, label), base_path_in_server
    )


def write_config(path: Path, config) -> None:
    with atomic_file(path, "w") as handle:
        handle.write(format_config(config))


# --- validation ---------------------------------------------------------------------------------------------


def _plan(source: Path, version: int | None, label: str | None) -> list[tuple[str, int]]:
    if not source.is_dir():
        raise FacemathError(f"--models {source}: no such folder")
    try:
        names = sorted(p.name for p in source.iterdir() if p.is_dir() and existing_versions(p))
    except OSError as exc:
        raise FacemathError(f"--models {source}: cannot read it ({exc.strerror})") from None
    if not names:
        raise FacemathError(f"--models {source}: no exported models (<name>/<version>/saved_model.pb) in it")
    if label is not None and not (label.replace("-", "").replace("_", "").isalnum() and not label[0].isdigit()):
        raise FacemathError(f"--label {label!r}: use letters, digits, '-' and '_', starting with a letter")
    plan = []
    for name in names:
        available = existing_versions(source / name)
        chosen = version if version is not None else available[-1]
        if chosen not in available:
            raise FacemathError(f"--version {chosen}: {source / name} has versions {available}")
        plan.append((name, chosen))
    return plan


def _check_loads(source: Path, name: str, version: int) -> None:
    """The version loads the way tensorflow_model_server loads it (the TF1 SavedModel loader, as `facemath serve`
    does): a SavedModel missing its variables/ or with a damaged graph is refused before anything is copied."""
    folder = source / name / str(version)
    try:
        SessionModel(folder).close()
    except FacemathError as exc:
        raise FacemathError(
            f"--models {source}: {name}/{version} cannot be served: {str(exc).split(': ', 1)[-1]}"
        ) from None


def _check_target(target: Path, names: list[str]) -> None:
    """The target must be a folder we can write in (or creatable), and each model folder in it a folder."""
    if target.exists() and not target.is_dir():
        raise FacemathError(f"--to {target}: exists and is not a folder")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FacemathError(f"--to {target}: {existing} is a file, so no folder can be made under it")
    folders = [existing] + [target / n for n in names if (target / n).exists()]
    for folder in folders:
        if not folder.is_dir():
            raise FacemathError(f"--to {target}: {folder} exists and is not a folder")
        try:  # a real write: as root, os.access says yes even on a read-only mount
            handle, probe = tempfile.mkstemp(dir=folder, prefix=".facemath-probe.")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            raise FacemathError(f"--to {target}: cannot write in {folder} ({exc.strerror})") from None


def _check_symlinks(version_dir: Path) -> None:
    """Refuse links that leave the version folder: deploy copies what was exported, nothing else."""
    root = version_dir.resolve()
    for path in [version_dir, *version_dir.rglob("*")]:
        if not path.is_symlink():
            continue
        resolved = path.resolve()
        if not resolved.exists():
            raise FacemathError(f"--models: {path} is a broken symlink")
        if root != resolved and root not in resolved.parents:
            raise FacemathError(
                f"--models: {path} is a symlink to {resolved}, outside {version_dir}; deploy copies nothing from "
                f"outside an export (copy the file into it instead)"
            )


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- the config ---------------------------------------------------------------------------------------------


def _find(config, name: str):
    if config is None:
        return None
    return next((c for c in config.model_config_list.config if c.name == name), None)


def _label_moves(old, plan, label) -> list[str]:
    if label is None:
        return []
    moves = []
    for name, chosen in plan:
        entry = _find(old, name)
        before = entry.version_labels.get(label) if entry is not None and label in entry.version_labels else None
        if before is not None and before != chosen:
            moves.append(f"{label} of {name}: {before} -> {chosen}")
    return moves


def _config(old, plan, label, target, base_path_in_server, move: bool, add: bool):
    """The new ModelServerConfig: entries of other models copied as they are; ours updated in place.

    The label is set on the deployed version when `move` (the last step of a rollout), or when it is new to the
    entry and `add` (allowed at start-up, and on a reload by --allow_version_labels_for_unavailable_models); an
    existing label otherwise stays where it is.
    """
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    if old is not None:
        config.CopyFrom(old)
    config.model_config_list.SetInParent()
    for name, chosen in plan:
        entry = _find(config, name) or config.model_config_list.config.add(name=name)
        entry.base_path = (
            f"{base_path_in_server.rstrip('/')}/{name}" if base_path_in_server else str((target / name).resolve())
        )
        if not entry.model_platform and not entry.model_type:
            entry.model_platform = "tensorflow"
        if label is not None:
            new = label not in entry.version_labels
            if move or (new and add):
                entry.version_labels[label] = chosen
        on_disk = set(existing_versions(target / name)) | {chosen}
        keep = set(sorted(on_disk)[-KEEP_VERSIONS:]) | {chosen} | set(entry.version_labels.values())
        entry.model_version_policy.specific.Clear()
        entry.model_version_policy.specific.versions.extend(sorted(keep))
    return config


# --- the fleet ----------------------------------------------------------------------------------------------


def resolve_replicas(targets: list[str]) -> list[str]:
    """Every replica named by `--reload` values: HOST:PORT as given; dns:///NAME:PORT resolved to each address
    the system resolver returns (a headless Service's ready pods), as gRPC's own dns resolver would."""
    replicas: list[str] = []
    for target in targets:
        if not target.startswith("dns:"):
            if ":" not in target.rsplit("]", 1)[-1]:
                raise FacemathError(f"--reload {target}: give HOST:PORT or dns:///NAME:PORT")
            replicas.append(target)
            continue
        if not target.startswith("dns:///"):
            raise FacemathError(
                f"--reload {target}: only dns:///NAME:PORT is supported (the system's resolver, not a named DNS server)"
            )
        host, sep, port = target[len("dns:///") :].rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise FacemathError(f"--reload {target}: give dns:///NAME:PORT")
        try:
            answers = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise FacemathError(f"--reload {target}: cannot resolve {host} ({exc.strerror})") from None
        for family, _, _, _, address in answers:
            ip = address[0]
            replicas.append(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return list(dict.fromkeys(replicas))


@dataclass
class ReplicaReport:
    replica: str
    ok: bool
    detail: str = ""  # what it lacks, or the error it answered with


def roll_out(
    result: DeployResult,
    targets: list[str],
    timeout: float = 120.0,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    log=None,
) -> list[str]:
    """Roll a deploy out to every replica and move the label only when all of them have the new versions.

    1. Each replica gets models.config as written (new versions added, labels where they were) through
       HandleReloadConfigRequest, and GetModelStatus is polled until every deployed version is AVAILABLE.
    2. Only if every replica got there within `timeout`: under the folder lock, models.config is re-read and
       the label moved (added) for the deployed models, written, and sent to every replica again.
    Otherwise a FacemathError names the replicas that lag and models.config keeps the label where it was.
    Replicas that poll models.config themselves see the same two files in the same order. Returns the
    replicas."""
    log = log or (lambda line: None)
    replicas = resolve_replicas(targets)
    if not replicas:
        raise FacemathError(f"--reload {', '.join(targets)}: no replica found")
    deadline = time.monotonic() + timeout
    reports = _each(
        replicas, lambda r: _push_and_wait(r, result.config, result.deployed, deadline, tls_ca, tls_cert, tls_key)
    )
    lagging = [r for r in reports if not r.ok]
    versions = ", ".join(f"{n} {v}" for n, v in sorted(result.deployed.items()))
    if lagging:
        held = f"; label {result.label} left where it was" if result.label else ""
        raise FacemathError(
            f"--reload: {len(lagging)} of {len(replicas)} replicas do not have every deployed version AVAILABLE "
            f"after {timeout:.0f} s: " + "; ".join(f"{r.replica} ({r.detail})" for r in lagging) + held
        )
    log(f"{len(replicas)} replica(s) {', '.join(replicas)}: every deployed version AVAILABLE ({versions})")
    if result.label is None:
        return replicas
    with folder_lock(result.config_path.parent, "--to"):
        current = read_config_proto(result.config_path) if result.config_path.exists() else result.config
        plan = [(name, v) for name, v in result.deployed.items() if _find(current, name) is not None]
        for name, chosen in plan:
            policy = _find(current, name).model_version_policy
            if policy.WhichOneof("policy_choice") == "specific" and chosen not in policy.specific.versions:
                raise FacemathError(
                    f"--to {result.config_path.parent}: models.config no longer serves {name} {chosen} (changed by "
                    f"another deploy meanwhile); label {result.label} not moved"
                )
        final = _label_only(current, plan, result.label)
        write_config(result.config_path, final)
    result.config, result.pending_labels = final, []
    reports = _each(
        replicas,
        lambda r: _push_and_check_label(r, final, result.deployed, result.label, deadline, tls_ca, tls_cert, tls_key),
    )
    failed = [r for r in reports if not r.ok]
    if failed:
        raise FacemathError(
            f"--reload: models.config moved label {result.label}, but {len(failed)} of {len(replicas)} replicas did "
            "not take it: " + "; ".join(f"{r.replica} ({r.detail})" for r in failed)
        )
    log(f"label {result.label} on {versions} on every replica; wrote {result.config_path}")
    return replicas


def _label_only(config, plan, label):
    from tensorflow_serving.config import model_server_config_pb2

    final = model_server_config_pb2.ModelServerConfig()
    final.CopyFrom(config)
    for name, chosen in plan:
        _find(final, name).version_labels[label] = chosen
    return final


def _each(replicas: list[str], work) -> list[ReplicaReport]:
    with ThreadPoolExecutor(max_workers=min(16, len(replicas))) as pool:
        return list(pool.map(work, replicas))


def _push_and_wait(replica, config, deployed, deadline, tls_ca, tls_cert, tls_key) -> ReplicaReport:
    try:
        with open_channel(replica, tls_ca, tls_cert, tls_key, option="--reload") as channel:
            _reload(channel, replica, config, deadline)
            missing = _wait_available(channel, deployed, deadline)
    except FacemathError as exc:
        return ReplicaReport(replica, False, str(exc))
    return ReplicaReport(replica, not missing, missing)


def _push_and_check_label(replica, config, deployed, label, deadline, tls_ca, tls_cert, tls_key) -> ReplicaReport:
    try:
        with open_channel(replica, tls_ca, tls_cert, tls_key, option="--reload") as channel:
            _reload(channel, replica, config, deadline)
            wrong = [
                f"{label} of {name} -> {seen}"
                for name, version in deployed.items()
                if (seen := label_version(channel, name, label)) != version
            ]
    except FacemathError as exc:
        return ReplicaReport(replica, False, str(exc))
    return ReplicaReport(replica, not wrong, ", ".join(wrong))


def _remaining(deadline: float) -> float:
    return max(0.5, deadline - time.monotonic())


def _rpc_error(exc) -> str:
    code = exc.code().name if exc.code() else "UNKNOWN"
    details = exc.details() or ""
    return f"{code}: {tls_failure(details) or ' '.join(details.split())}"


def _reload(channel, replica: str, config, deadline: float) -> None:
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest(config=config)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    try:
        response = stub.HandleReloadConfigRequest(request, timeout=_remaining(deadline))
    except grpc.RpcError as exc:
        raise FacemathError(f"reload refused: {_rpc_error(exc)}") from None
    if response.status.error_code:
        raise FacemathError(f"reload refused: {' '.join(response.status.error_message.split())}")


def model_states(channel, name: str, timeout: float = 5.0) -> dict[int, int]:
    """GetModelStatus of one model on one replica: {version: state} ({} when it has none)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    try:
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=timeout)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return {}
        raise FacemathError(_rpc_error(exc)) from None
    return {s.version: s.state for s in response.model_version_status}


def label_version(channel, name: str, label: str, timeout: float = 5.0) -> int | None:
    """The version `label` of model `name` resolves to on one replica (None: not assigned there), as a request
    naming the label would see it: GetModelMetadata answers with the resolved numeric version."""
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    request.model_spec.version_label = label
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        return int(stub.GetModelMetadata(request, timeout=timeout).model_spec.version.value)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
            return None  # "Unrecognized servable version label", or the label's version is not loaded
        raise FacemathError(_rpc_error(exc)) from None


def _wait_available(channel, deployed: dict[str, int], deadline: float) -> str:
    """Poll until every deployed version is AVAILABLE; '' or what is still missing at the deadline (a replica
    that does not answer for a while, e.g. restarting, is asked again until then)."""
    while True:
        try:
            missing = "; ".join(
                f"{name} {version}: {_state_name(states.get(version))}"
                for name, version in sorted(deployed.items())
                if (states := model_states(channel, name)).get(version) != AVAILABLE_STATE
            )
        except FacemathError as exc:
            missing = f"GetModelStatus: {exc}"
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.25)


def _state_name(state: int | None) -> str:
    names = {0: "UNKNOWN", 10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}
    return "not loaded" if state is None else names.get(state, str(state))


def reload_server(
    server: str,
    result: DeployResult,
    timeout: float = 120.0,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """`roll_out` to one server; returns the number of reloads it got (2 when a label was set, else 1)."""
    roll_out(result, [server], timeout, tls_ca, tls_cert, tls_key)
    return 2 if result.label is not None else 1
