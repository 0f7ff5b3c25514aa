"""TF Serving's models.config (a `ModelServerConfig` text proto): reading, writing, and the folder convention.

The stand-in server reads the same file the real server reads, and `facemath deploy` writes it, both through
TF Serving's own protos, so what the tests accept is what tensorflow_model_server accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facemath_core.base.errors import FacemathError
from facemath_core.models.layout import existing_versions


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: str
    policy: str = "latest"  # latest | all | specific
    num_versions: int = 1  # for latest
    versions: tuple[int, ...] = ()  # for specific
    labels: dict[str, int] = field(default_factory=dict)
    platform: str = "tensorflow"

    def served_versions(self, available: list[int]) -> list[int]:
        """Which of the versions on disk this policy serves (TF Serving's semantics)."""
        available = sorted(available)
        if self.policy == "all":
            return available
        if self.policy == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.num_versions :] if available else []


def parse_config(text: str, origin: str = "models.config") -> list[ModelEntry]:
    return [entry_from_proto(c) for c in parse_config_proto(text, origin).model_config_list.config]


def parse_config_proto(text: str, origin: str = "models.config"):
    """The `ModelServerConfig` message itself, every field kept (what `facemath deploy` round-trips)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise FacemathError(f"{origin}: not a ModelServerConfig text proto ({' '.join(str(exc).split())})") from None
    if config.WhichOneof("config") == "custom_model_config":
        raise FacemathError(f"{origin}: holds a custom_model_config; facemath reads and writes model_config_list only")
    return config


def read_config_proto(path: str | Path, option: str = "--to"):
    """The config file at `path` (which must exist) as a message; one clear line for unreadable or non-UTF-8 files."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FacemathError(f"{option}: {path} is not UTF-8 text (byte {exc.start}); fix or move it first") from None
    except OSError as exc:
        raise FacemathError(f"{option}: cannot read {path} ({exc.strerror})") from None
    return parse_config_proto(text, str(path))


def entry_from_proto(c) -> ModelEntry:
    policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
    return ModelEntry(
        name=c.name,
        base_path=c.base_path,
        policy=policy,
        num_versions=c.model_version_policy.latest.num_versions or 1,
        versions=tuple(c.model_version_policy.specific.versions),
        labels=dict(c.version_labels),
        platform=c.model_platform,
    )


def to_proto(entries: list[ModelEntry]):
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for entry in entries:
        c = config.model_config_list.config.add()
        c.name = entry.name
        c.base_path = entry.base_path
        c.model_platform = entry.platform
        if entry.policy == "all":
            c.model_version_policy.all.SetInParent()
        elif entry.policy == "specific":
            c.model_version_policy.specific.versions.extend(entry.versions)
        else:
            c.model_version_policy.latest.num_versions = entry.num_versions
        for label, version in sorted(entry.labels.items()):
            c.version_labels[label] = version
    return config


def format_config(entries) -> str:
    """Text proto of a list of entries or of a `ModelServerConfig` message."""
    from google.protobuf import text_format

    return text_format.MessageToString(to_proto(entries) if isinstance(entries, list) else entries)


def read_config(path: str | Path) -> list[ModelEntry]:
    path = Path(path)
    if not path.exists():
        raise FacemathError(f"--model-config-file {path}: no such file")
    return [entry_from_proto(c) for c in read_config_proto(path, "--model-config-file").model_config_list.config]


def entries_for_folder(models: str | Path) -> list[ModelEntry]:
    """Every `<models>/<name>/<version>/` model, each served at its latest version (like --model_base_path)."""
    root = Path(models)
    if not root.is_dir():
        raise FacemathError(f"--models {root}: no such folder")
    entries = [
        ModelEntry(p.name, str(p.resolve())) for p in sorted(root.iterdir()) if p.is_dir() and existing_versions(p)
    ]
    if not entries:
        raise FacemathError(f"--models {root}: no <name>/<version>/ model folders in it")
    return entries
