"""The latents file (`latents.npz`): z per image plus where it came from. No pickles: plain numpy arrays only.

Written by `facemath project` (GAN projections) and `facemath encode` (VAE encodings); read by everything that
does arithmetic on faces. A file records its model family, so mixing models in one expression is caught.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import BadFileError, FacemathError, describe_os_error
from facemath_core.base.files import atomic_file
from facemath_core.base.text import plural


@dataclass
class Latents:
    names: list[str]
    z: np.ndarray  # (N, D) float32
    family: str  # "gan", "vae" or "vaegan" (signatures.FAMILIES)
    model: str  # the exported model that decodes z ("generator", "vae_decoder", "vaegan_decoder")
    model_version: int  # the version that made z, which decoding uses (0: not recorded, older files)
    source: str  # "projection" or "encoder"
    losses: dict[str, np.ndarray] = field(default_factory=dict)  # per term, (N,)
    failed: np.ndarray | None = None  # (N,) bool
    flagged: np.ndarray | None = None  # (N,) bool: projections that look failed (facemath_core.projection.flags)
    psnr: np.ndarray | None = None  # (N,) dB of the known pixels, for projections
    # (N,) bool: PSNR below the model's 1st percentile on its held-out faces (projection.flags.out_of_domain);
    # None when the model records no such figures
    out_of_domain: np.ndarray | None = None
    config: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # every model used, name -> version
    # A shard of a bulk run (`--shard K/N`, projection.shards): {"index": K, "count": N, "inputs": all input
    # files, "digest": of their names}, and each face's position among all inputs, which orders a merge.
    shard: dict = field(default_factory=dict)
    input_index: np.ndarray | None = None  # (N,) int64, only in a shard

    def index(self, name: str) -> int:
        return self.names.index(name)


def save_latents(path: str | Path, latents: Latents) -> None:
    arrays = {
        "names": np.array(latents.names, dtype=str),
        "z": np.asarray(latents.z, np.float32),
        "family": np.array(latents.family),
        "model": np.array(latents.model),
        "model_version": np.array(latents.model_version, np.int64),
        "source": np.array(latents.source),
        "failed": np.zeros(len(latents.names), bool) if latents.failed is None else np.asarray(latents.failed, bool),
        "flagged": flag_array(latents),
        **({} if latents.psnr is None else {"psnr": np.asarray(latents.psnr, np.float32)}),
        **({} if latents.out_of_domain is None else {"out_of_domain": np.asarray(latents.out_of_domain, bool)}),
        "config": np.array(json.dumps(latents.config, sort_keys=True)),
        "models": np.array(json.dumps(latents.models, sort_keys=True)),
        **{f"loss_{k}": np.asarray(v, np.float32) for k, v in latents.losses.items()},
    }
    if latents.shard:
        arrays["shard"] = np.array(json.dumps(latents.shard, sort_keys=True))
        arrays["input_index"] = np.asarray(latents.input_index, np.int64).reshape(len(latents.names))
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def flag_array(latents: Latents) -> np.ndarray:
    """The flagged field as N booleans; latents without one (encoder output, older files) have none flagged."""
    if latents.flagged is None:
        return np.zeros(len(latents.names), bool)
    return np.asarray(latents.flagged, bool)


def read_npz(path: str | Path, what: str = "latents file") -> dict[str, np.ndarray]:
    """Every array of a .npz archive, or a one-line BadFileError naming the file: missing, unreadable, truncated,
    not a zip archive, a lone .npy array, or holding pickled Python objects (refused: loading a pickle runs code)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FacemathError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise FacemathError(f"{path}: is a folder, not a {what}") from None
    except PermissionError as exc:
        raise FacemathError(describe_os_error(exc, path)) from None
    except ValueError as exc:
        if "pickle" in str(exc):  # neither .npz nor .npy: numpy would try to unpickle it
            raise BadFileError(f"{path}: not a {what} (not a .npz archive)") from None
        raise BadFileError(f"{path}: not a {what} ({_reason(exc)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BadFileError(f"{path}: not a {what}: truncated or corrupt ({_reason(exc)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise BadFileError(f"{path}: a single .npy array, not a {what} (a .npz archive of named arrays)")
    try:
        with data:
            # numpy reads only an array's bytes and so skips the zip's CRC check: check every member first.
            damaged = data.zip.testzip()
            if damaged is not None:
                raise BadFileError(f"{path}: not a {what}: corrupt (member {damaged} fails its checksum)")
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise BadFileError(
                f"{path}: holds pickled Python objects, which facemath refuses to load (they can run code); "
                f"a {what} holds plain arrays only"
            ) from None
        raise BadFileError(f"{path}: not a {what}: corrupt ({_reason(exc)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise BadFileError(f"{path}: not a {what}: truncated or corrupt ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def text_field(path: Path, arrays: dict, key: str, default: str | None = None) -> str:
    """A string stored as a 0-d text array; anything else names the file and the field."""
    if key not in arrays:
        if default is None:
            raise BadFileError(f"{path}: field {key!r} is missing")
        return default
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind not in "US":
        raise BadFileError(f"{path}: field {key!r} should be one text value, found a {value.dtype} array {value.shape}")
    return str(value)


def json_field(path: Path, arrays: dict, key: str) -> dict:
    """A JSON object stored as text; bad JSON or another JSON type names the file and the field."""
    text = text_field(path, arrays, key, default="{}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadFileError(f"{path}: field {key!r} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadFileError(f"{path}: field {key!r} should be a JSON object, found {type(value).__name__}")
    return value


def text_list(path: Path, arrays: dict, key: str) -> list[str]:
    """A 1-d array of strings (file names, paths)."""
    value = arrays.get(key)
    if value is None:
        raise BadFileError(f"{path}: field {key!r} is missing")
    if value.ndim != 1 or value.dtype.kind not in "US":
        raise BadFileError(f"{path}: field {key!r} should be a list of text, found a {value.dtype} array {value.shape}")
    return [str(v) for v in value]


def finite_matrix(path: Path, arrays: dict, key: str, rows: int) -> np.ndarray:
    """A (rows, D) array of finite numbers, as float32: NaN or infinite latents would render as noise."""
    value = arrays[key]
    if value.ndim != 2 or value.dtype.kind not in "fiu":
        raise BadFileError(f"{path}: field {key!r} should be a 2-d array of numbers, found {value.dtype} {value.shape}")
    if value.shape[0] != rows:
        raise BadFileError(f"{path}: {rows} names but {value.shape[0]} rows of {key!r}")
    with np.errstate(over="ignore"):
        value = value.astype(np.float32)
    bad = ~np.isfinite(value).all(axis=1)
    if bad.any():
        raise BadFileError(
            f"{path}: {int(bad.sum())} row(s) of {key!r} hold NaN or infinite values (first: row {int(np.argmax(bad))})"
        )
    return value


def load_latents(path: str | Path) -> Latents:
    path = Path(path)
    arrays = read_npz(path)
    missing = {"names", "z", "family", "model"} - set(arrays)
    if missing:
        raise BadFileError(f"{path}: not a facemath latents file (missing {', '.join(sorted(missing))})")
    names = text_list(path, arrays, "names")
    z = finite_matrix(path, arrays, "z", len(names))
    version = arrays.get("model_version", np.array(0))
    if version.ndim != 0 or version.dtype.kind not in "iu":
        raise BadFileError(f"{path}: field 'model_version' should be one whole number, found {version.dtype}")
    failed = arrays.get("failed")
    if failed is not None and (failed.dtype.kind != "b" or failed.shape != (len(names),)):
        raise BadFileError(f"{path}: field 'failed' should be {len(names)} true/false values")
    flagged = arrays.get("flagged")  # absent from files written before flagging existed: none flagged
    if flagged is not None and (flagged.dtype.kind != "b" or flagged.shape != (len(names),)):
        raise BadFileError(f"{path}: field 'flagged' should be {len(names)} true/false values")
    psnr = arrays.get("psnr")
    if psnr is not None and (psnr.dtype.kind != "f" or psnr.shape != (len(names),)):
        raise BadFileError(f"{path}: field 'psnr' should be {len(names)} numbers")
    out_of_domain = arrays.get("out_of_domain")  # absent: the model recorded no held-out PSNR (or older files)
    if out_of_domain is not None and (out_of_domain.dtype.kind != "b" or out_of_domain.shape != (len(names),)):
        raise BadFileError(f"{path}: field 'out_of_domain' should be {len(names)} true/false values")
    losses = {k[5:]: v for k, v in arrays.items() if k.startswith("loss_")}
    for name, value in losses.items():
        if value.dtype.kind not in "fiu" or value.shape != (len(names),):
            raise BadFileError(f"{path}: field 'loss_{name}' should be {len(names)} numbers")
    shard = json_field(path, arrays, "shard")
    input_index = arrays.get("input_index")
    if shard and (input_index is None or input_index.dtype.kind not in "iu" or input_index.shape != (len(names),)):
        raise BadFileError(f"{path}: field 'input_index' should be {len(names)} whole numbers in a shard")
    models = json_field(path, arrays, "models")
    if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in models.items()):
        raise BadFileError(f"{path}: field 'models' should map model names to version numbers")
    return Latents(
        names=names,
        z=z,
        family=text_field(path, arrays, "family"),
        model=text_field(path, arrays, "model"),
        model_version=int(version),
        source=text_field(path, arrays, "source", default=""),
        losses=losses,
        failed=failed,
        flagged=flagged,
        psnr=psnr,
        out_of_domain=out_of_domain,
        config=json_field(path, arrays, "config"),
        models=models,
        shard=shard,
        input_index=None if not shard else input_index.astype(np.int64),
    )


def find(latents: Latents, name: str, origin: str = "--latents") -> int:
    """Index of a latent by file name or stem; an unknown name lists close matches."""
    if name in latents.names:
        return latents.names.index(name)
    stems = [Path(n).stem for n in latents.names]
    if name in stems:
        return stems.index(name)
    import difflib

    close = difflib.get_close_matches(name, stems, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {plural(len(stems), 'name')}, e.g. {stems[0]}"
    raise FacemathError(f"{origin}: no latent named {name!r}{hint}")


def encode_images(backend, names: list[str], paths: list[str], images: np.ndarray, family: str = "vae") -> Latents:
    """Latents from a variational encoder (the posterior means) in the same format as projections: the VAE's
    (`family` "vae") or the VAE-GAN's ("vaegan")."""
    decoder = S.FAMILIES[family]
    encoder = S.ENCODER_OF[decoder]
    if encoder not in S.VARIATIONAL_ENCODERS:
        raise FacemathError(
            f"--model {family}: its encoder {encoder} is not a variational encoder; choose vae or vaegan"
        )
    z_mean, z_log_var = backend.encode(images, encoder)
    return Latents(
        names=names,
        z=z_mean,
        family=family,
        model=decoder,
        model_version=backend.version(decoder),
        source="encoder",
        losses={"posterior_std_mean": np.exp(0.5 * z_log_var).mean(axis=1)},
        config={"backend": backend.describe(), "inputs": paths},
        models={encoder: backend.version(encoder), decoder: backend.version(decoder)},
    )


# Decoded frames are held in memory together: float32 from the model, uint8 for saving, and the drawn grid.
MAX_FRAME_BYTES = 2 * 1024**3


def check_frames(count: int, image_size: int, option: str = "frames") -> None:
    """Refuse a frame count whose images would not fit the memory budget, before computing any of them."""
    per_frame = image_size * image_size * 3 * (4 + 1 + 1)
    if count * per_frame > MAX_FRAME_BYTES:
        raise FacemathError(
            f"{option}: {count:,} frames of {image_size}x{image_size} would need about "
            f"{count * per_frame / 2**30:.1f} GiB of memory; at most {MAX_FRAME_BYTES // per_frame:,} frames"
        )


def decode(backend, latents: Latents, z: np.ndarray, option: str = "frames") -> np.ndarray:
    """Images for z with the model that made the latents; a z size that model cannot take is an error."""
    meta = backend.metadata(latents.model)
    check_frames(len(z), meta["image_size"], option)
    if not np.isfinite(z).all():
        raise FacemathError(f"{option}: the latents to render hold NaN or infinite values (an overflow?)")
    expected = meta["z_dim"]
    if z.shape[-1] != expected:
        raise FacemathError(
            f"latents of {z.shape[-1]} dimensions, but the {latents.model} model takes {expected}: "
            f"these latents come from another model"
        )
    return backend.generate(z, latents.model)
