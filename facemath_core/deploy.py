"""`facemath deploy`: put exported model versions under a TF Serving model base path and describe them in
models.config; optionally tell a running server to reload and wait until the models are AVAILABLE."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from facemath_core.errors import FacemathError
from facemath_core.files import atomic_file
from facemath_core.model_config import ModelEntry, format_config, parse_config
from facemath_core.model_layout import existing_versions

CONFIG_FILE = "models.config"
KEEP_VERSIONS = 2  # serve the newest two: a rollout can drain the old one while the new one takes traffic


def deploy(
    models: str | Path,
    to: str | Path,
    version: int | None = None,
    label: str | None = None,
    base_path_in_server: str | None = None,
) -> tuple[list[Path], Path]:
    """Copy each model's version (the newest, or `version`) to `to/<name>/<version>/` atomically and (re)write
    `to/models.config`. Returns the copied folders and the config path."""
    source, target = Path(models), Path(to)
    names = sorted(p.name for p in source.iterdir() if p.is_dir() and existing_versions(p)) if source.is_dir() else []
    if not names:
        raise FacemathError(f"--models {source}: no exported models (<name>/<version>/saved_model.pb) in it")
    if label is not None and not label.replace("-", "").replace("_", "").isalnum():
        raise FacemathError(f"--label {label!r}: use letters, digits, '-' and '_'")
    plan = []
    for name in names:
        available = existing_versions(source / name)
        chosen = version if version is not None else available[-1]
        if chosen not in available:
            raise FacemathError(f"--version {chosen}: {source / name} has versions {available}")
        plan.append((name, chosen))
    copied = []
    for name, chosen in plan:
        final = target / name / str(chosen)
        if final.exists():
            continue  # already deployed: versions are immutable
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{chosen}.", suffix=".part"))
        try:
            shutil.copytree(source / name / str(chosen), tmp, dirs_exist_ok=True)
            os.chmod(tmp, 0o755)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        copied.append(final)
    config_path = target / CONFIG_FILE
    old = {e.name: e for e in parse_config(config_path.read_text(), str(config_path))} if config_path.exists() else {}
    entries = []
    for name in sorted(set(old) | set(names)):
        on_disk = existing_versions(target / name)
        labels = dict(old[name].labels) if name in old else {}
        if label is not None and name in names:
            labels[label] = dict(plan)[name]
        keep = sorted(set(on_disk[-KEEP_VERSIONS:]) | set(labels.values()))
        base = f"{base_path_in_server.rstrip('/')}/{name}" if base_path_in_server else str((target / name).resolve())
        entries.append(ModelEntry(name, base, "specific", versions=tuple(keep), labels=labels))
    with atomic_file(config_path, "w") as handle:
        handle.write(format_config(entries))
    return copied, config_path


def reload_server(server: str, config_path: Path, timeout: float = 120.0) -> None:
    """ModelService.HandleReloadConfigRequest with the new config, then wait for AVAILABLE."""
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    from facemath_core.backends.tfserving import wait_until_available
    from facemath_core.model_config import read_config, to_proto

    entries = read_config(config_path)
    request = model_management_pb2.ReloadConfigRequest(config=to_proto(entries))
    with grpc.insecure_channel(server) as channel:
        try:
            response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                request, timeout=timeout
            )
        except grpc.RpcError as exc:
            raise FacemathError(
                f"--reload {server}: {exc.code().name}: {' '.join((exc.details() or '').split())}"
            ) from None
    if response.status.error_code:
        raise FacemathError(f"--reload {server}: {response.status.error_message}")
    for entry in entries:
        wait_until_available(server, [entry.name], timeout, version=max(entry.versions) if entry.versions else None)
