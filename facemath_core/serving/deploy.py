"""`facemath deploy`: put exported model versions under a TF Serving model base path and describe them in
models.config; optionally tell a running server to reload and wait until the models are AVAILABLE.

What it promises (docs/deploy.md):
- Everything is checked before the first byte is copied: the source models and versions, symlinks, the target
  folder (writable, not a file), the existing models.config (UTF-8, a ModelServerConfig), versions already there.
- Entries of models.config that it does not deploy are written back unchanged (the message is round-tripped, not
  re-derived); of its own entries it changes only base_path, platform, version policy and its label.
- A version already deployed with other content is refused unless `replace`; versions appear in one rename.
- A label moves to a version only once the server has that version loaded: TF Serving refuses a label on a version
  that is not AVAILABLE (server_core.cc, UpdateModelVersionLabelMap). So a move is two configs: first the new
  version next to the old one with the label unchanged, then, once it is AVAILABLE, the label moved.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.base.files import atomic_dir, atomic_file
from facemath_core.models.layout import existing_versions
from facemath_core.serving.backends.tfserving import open_channel, wait_for_versions
from facemath_core.serving.model_config import entry_from_proto, format_config, read_config_proto

CONFIG_FILE = "models.config"
KEEP_VERSIONS = 2  # serve the newest two: a rollout can drain the old one while the new one takes traffic


@dataclass
class DeployResult:
    copied: list[Path]  # version folders written (new or replaced)
    config_path: Path
    config: object  # the ModelServerConfig written to config_path
    final: object  # the config once every label is where it was asked to be
    pending_labels: list[str] = field(default_factory=list)  # "label of model: v1 -> v2" still to move
    reload_first: object = None  # with --reload: the config to load before any label moves (None: not needed)
    deployed: dict[str, int] = field(default_factory=dict)  # model name -> version deployed


def deploy(
    models: str | Path,
    to: str | Path,
    version: int | None = None,
    label: str | None = None,
    base_path_in_server: str | None = None,
    replace: bool = False,
) -> DeployResult:
    """Copy each model's version (the newest, or `version`) to `to/<name>/<version>/` and write
    `to/models.config`. Validates everything first; see the module docstring."""
    source, target = Path(models), Path(to)
    plan = _plan(source, version, label)
    _check_target(target, [name for name, _ in plan])
    config_path = target / CONFIG_FILE
    if config_path.is_dir():
        raise FacemathError(f"--to {target}: {config_path} is a folder, not a models.config file")
    old = read_config_proto(config_path) if config_path.exists() else None
    served_before = {name: _served(old, name, target) for name, _ in plan}
    to_copy = []
    for name, chosen in plan:
        _check_symlinks(source / name / str(chosen))
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

    final = _config(old, plan, label, target, base_path_in_server, served_before, move_labels=True)
    written = _config(old, plan, label, target, base_path_in_server, served_before, move_labels=False)
    pending = _label_moves(old, plan, label, served_before)
    # --reload: first the new versions without any label on a version the server has not loaded yet.
    first = _config(old, plan, None, target, base_path_in_server, served_before, move_labels=False, chosen_too=True)
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
        copied,
        config_path,
        written,
        final,
        pending,
        None if first == final else first,
        dict(plan),
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


def _served(config, name: str, target: Path) -> set[int]:
    """The versions the previous config made the server load (the only ones a label may move to)."""
    entry = _find(config, name)
    if entry is None:
        return set()
    return set(entry_from_proto(entry).served_versions(existing_versions(target / name)))


def _label_moves(old, plan, label, served_before) -> list[str]:
    if label is None:
        return []
    moves = []
    for name, chosen in plan:
        entry = _find(old, name)
        before = entry.version_labels.get(label) if entry is not None and label in entry.version_labels else None
        if before is not None and before != chosen and chosen not in served_before[name]:
            moves.append(f"{label} of {name}: {before} -> {chosen}")
    return moves


def _config(old, plan, label, target, base_path_in_server, served_before, move_labels: bool, chosen_too=False):
    """The new ModelServerConfig: entries of other models copied as they are; ours updated in place.

    A label is set to its new version when `move_labels`, or when that version was already served, or when the
    label is new (allowed at start-up and on a reload with --allow_version_labels_for_unavailable_models). With
    `chosen_too` (the first of two reloads) no label is put on a version the server has not loaded yet.
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
            before = entry.version_labels[label] if label in entry.version_labels else None
            if move_labels or chosen in served_before[name] or before is None:
                entry.version_labels[label] = chosen
        if chosen_too:
            for key in [k for k, v in entry.version_labels.items() if v not in served_before[name]]:
                del entry.version_labels[key]
        on_disk = set(existing_versions(target / name)) | {chosen}
        keep = set(sorted(on_disk)[-KEEP_VERSIONS:]) | {chosen} | set(entry.version_labels.values())
        entry.model_version_policy.specific.Clear()
        entry.model_version_policy.specific.versions.extend(sorted(keep))
    return config


# --- reload -------------------------------------------------------------------------------------------------


def reload_server(
    server: str,
    result: DeployResult,
    timeout: float = 120.0,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> int:
    """ModelService.HandleReloadConfigRequest, then wait until every deployed version is AVAILABLE. When a label
    has to move, two reloads: the new versions first, then (once AVAILABLE) the labels; the final config is then
    written to models.config too. Returns the number of reloads."""

    steps = [c for c in (result.reload_first, result.final) if c is not None]
    with open_channel(server, tls_ca, tls_cert, tls_key, option="--reload") as channel:
        for config in steps:
            _reload(channel, server, config, timeout)
            wait_for_versions(channel, server, {name: [v] for name, v in result.deployed.items()}, timeout)
    if result.final != result.config:
        write_config(result.config_path, result.final)
        result.config = result.final
        result.pending_labels = []
    return len(steps)


def _reload(channel, server: str, config, timeout: float) -> None:
    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest(config=config)
    try:
        response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() else "UNKNOWN"
        raise FacemathError(f"--reload {server}: {code}: {' '.join((exc.details() or '').split())}") from None
    if response.status.error_code:
        raise FacemathError(f"--reload {server}: {' '.join(response.status.error_message.split())}")
