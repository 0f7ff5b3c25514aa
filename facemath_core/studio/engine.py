"""What the studio computes, as calls into the library: faces read with `images`, projection configs from
`projection_settings`, arithmetic with `arithmetic`/`worked_example`, attribute vectors from `attribute_vectors`,
interpolation through the operator plugins (as `facemath interpolate` does), latents files with `latents`.

One `Engine` per server: one backend (embedded or TF Serving), one plugin registry and one cache of projectors
(traced loops and checked contracts, by their components), shared by every session.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.text import plural
from facemath_core.data.folders import ATTR_FILE, IMAGE_DIR, read_attribute_file
from facemath_core.data.images import crop_and_resize, from_unit, list_images, read_image, to_unit
from facemath_core.host.contracts import check_operator, interpolate
from facemath_core.latent.arithmetic import Evaluator
from facemath_core.latent.attribute_vectors import attribute_vectors
from facemath_core.latent.latents import Latents, check_frames, decode, save_latents
from facemath_core.latent.space import LatentSpace
from facemath_core.latent.worked_example import analogy_figure, j_diagram_latents, work_out
from facemath_core.projection.projector import PRESETS, ProjectionConfig, ProjectorCache, resolve_start
from facemath_core.studio.sessions import Session

MAX_INTERPOLATION_FACES = 16
# The component kinds the page offers, with each component's parameters (their declared schema).
OFFERED_KINDS = ("loss", "optimizer", "init", "constraint", "blender", "operator")
MAX_ANALOGY_SIZE = 9
SLIDER_RANGE = 3.0  # a slider moves a face by at most this many attribute vectors either way


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_folder(folder: Path) -> Path:
    """The folder of face images: `folder`, or its img_align_celeba/ in CelebA's layout (as `project` reads it)."""

    return folder / IMAGE_DIR if (folder / IMAGE_DIR).is_dir() else folder


# The encodings the library keeps beside each projection: family -> (encoder, decoder, Entry field).
ENCODED = {
    "vae": (S.VAE_ENCODER, S.VAE_DECODER, "vae_z"),
    "vaegan": (S.VAEGAN_ENCODER, S.VAEGAN_DECODER, "vaegan_z"),
}


class Engine:
    def __init__(self, backend, registry, faces: str | Path | None = None):
        self.backend, self.registry = backend, registry
        meta = backend.metadata(S.GENERATOR)
        self.image_size, self.z_dim = meta["image_size"], meta["z_dim"]
        self.has_vae = backend.has(S.VAE_ENCODER) and backend.has(S.VAE_DECODER)
        self.has_vaegan = backend.has(S.VAEGAN_ENCODER) and backend.has(S.VAEGAN_DECODER)
        self.faces = _image_folder(Path(faces)) if faces is not None else None
        self.face_files = {p.name: p for p in list_images(self.faces)} if self.faces is not None else {}
        self.attribute_names, self.labels = self._read_labels()
        # A projection with the components of an earlier one reuses its projector: its first step comes at once.
        self.projectors = ProjectorCache(backend, registry)
        # The start a projection gets unless the page says otherwise: the model's own encoder when it has one.
        self.default_init = resolve_start(backend, ProjectionConfig(init=None))[0].init

    def _read_labels(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """Attribute labels of the example faces, when their folder has an attribute file (CelebA format)."""

        # Next to the images or one folder up (CelebA's layout), as `facemath math` looks for it.
        found = [f / ATTR_FILE for f in (self.faces, self.faces.parent)] if self.faces is not None else []
        found = [f for f in found if f.is_file()]
        if not found:
            return [], {}
        rows, names, values = read_attribute_file(found[0])
        return list(names), {row: np.asarray(v) > 0 for row, v in zip(rows, values, strict=True)}

    # --- menus --------------------------------------------------------------------------------------------

    def menus(self) -> dict:
        """Everything the page offers a choice of, from the plugin registry: a plugin installed for the CLI shows
        up here too."""

        kinds = {
            "init": "inits",
            "loss": "losses",
            "blender": "blenders",
            "operator": "operators",
            "optimizer": "optimizers",
            "constraint": "constraints",
        }
        menus = {plural: self.registry.names(kind) for kind, plural in kinds.items()}
        defaults = ProjectionConfig()
        return {
            **menus,
            # Per kind and name: help, provider, the parameters' schema (type, default, choices, range, help) and
            # what else `facemath plugins --json` says of it; the page builds its controls from it.
            "components": {
                kind: {name: self.registry.get(kind, name).describe() for name in self.registry.names(kind)}
                for kind in OFFERED_KINDS
            },
            "presets": list(PRESETS),
            "init_default": self.default_init,
            "optimizer_default": defaults.optimizer,
            "constraint_default": defaults.constraint,
            "faces": list(self.face_files),
            "image_size": self.image_size,
            "vae": self.has_vae,
            "vaegan": self.has_vaegan,
            "backend": self.backend.describe(),
            "slider_range": SLIDER_RANGE,
        }

    # --- faces --------------------------------------------------------------------------------------------

    def example(self, name: str) -> tuple[np.ndarray, str]:
        if name not in self.face_files:
            raise FacemathError(f"no example face named {name!r}" + ("" if self.faces else " (no --faces folder)"))
        path = self.face_files[name]
        return self.model_sized(read_image(path)), str(path)

    def model_sized(self, rgb: np.ndarray) -> np.ndarray:
        """The image as the model sees it: cropped and resized like `facemath project` does."""
        return crop_and_resize(rgb, self.image_size)

    def target(self, session: Session, source: str) -> tuple[np.ndarray, str, str]:
        """(image, path, display name) of `example:NAME`, `upload:NAME` or `library:NAME`."""
        kind, _, name = source.partition(":")
        if kind == "example":
            image, path = self.example(name)
            return image, path, name
        if kind == "upload":
            if name not in session.uploads:
                raise FacemathError(f"no upload named {name!r} in this session")
            return self.model_sized(read_image(session.uploads[name])), "", name
        if kind == "library":
            entry = session.entry(name)
            return entry.target, entry.path, name
        raise FacemathError(f"face {source!r}: write example:NAME, upload:NAME or library:NAME")

    def render(self, z: np.ndarray, model: str = S.GENERATOR) -> np.ndarray:
        """uint8 faces for (N, D) latents."""
        return from_unit(decode(self.backend, self.template(model), np.asarray(z, np.float32)))

    def encode_vae(self, images: np.ndarray, encoder: str = S.VAE_ENCODER) -> np.ndarray | None:
        """A variational encoder's posterior means of uint8 faces (resized to its input if it differs from the
        GAN's), as `facemath encode` computes them: the VAE's, or the VAE-GAN's with `encoder=S.VAEGAN_ENCODER`;
        None when the models lack that family."""
        if not (self.has_vae if encoder == S.VAE_ENCODER else self.has_vaegan):
            return None
        size = self.backend.metadata(encoder)["image_size"]
        if size != images.shape[1]:
            images = np.stack([crop_and_resize(image, size) for image in images])
        z_mean, _ = self.backend.encode(to_unit(images), encoder)
        return np.asarray(z_mean, np.float32)

    # --- the library as latents ---------------------------------------------------------------------------

    def template(self, model: str = S.GENERATOR) -> Latents:
        """An empty Latents of this backend's model, for `latents.decode`'s checks."""
        family = {S.VAE_DECODER: "vae", S.VAEGAN_DECODER: "vaegan"}.get(model, "gan")
        return Latents([], np.zeros((0, 0), np.float32), family, model, self.backend.version(model), "studio")

    def library_latents(self, session: Session, family: str = "gan", entries: list | None = None) -> Latents:
        entries = list(session.entries()) if entries is None else entries
        if not entries:
            raise FacemathError("the library is empty: project a face first")
        if family in ENCODED:
            encoder, model, field_name = ENCODED[family]
            entries = [e for e in entries if getattr(e, field_name) is not None]
            if not entries:
                raise FacemathError(f"no {family.upper()} encodings in the library (the models have no {family})")
            z = np.stack([getattr(e, field_name) for e in entries])
            source = "encoder"
            models = {encoder: self.backend.version(encoder), model: self.backend.version(model)}
        elif family == "gan":
            z, model, source = np.stack([e.z for e in entries]), S.GENERATOR, "projection"
            models = {model: self.backend.version(model)}
        else:
            raise FacemathError(f"family {family!r}: choose gan, vae or vaegan")
        return Latents(
            names=[e.name for e in entries],
            z=z.astype(np.float32),
            family=family,
            model=model,
            model_version=self.backend.version(model),
            source=source,
            losses={"total": np.array([e.loss for e in entries], np.float32)} if family == "gan" else {},
            psnr=np.array([e.psnr for e in entries], np.float32) if family == "gan" else None,
            config={"backend": self.backend.describe(), "inputs": [e.path for e in entries], "studio": True},
            models=models,
        )

    def library_npz(self, session: Session, family: str, folder: Path) -> bytes:
        """The library as a latents.npz (readable by every command taking --latents), written by `save_latents` in
        a folder of its own inside the session's folder and read back: downloads at the same time never share a
        file."""
        latents = self.library_latents(session, family)
        with tempfile.TemporaryDirectory(dir=folder, prefix="download-") as scratch:
            path = Path(scratch) / f"library-{family}.npz"
            save_latents(path, latents)
            return path.read_bytes()

    def space(self, session: Session):
        """The library as a LatentSpace labelled from the example faces' attribute file, as `open_space` would
        label a latents file whose inputs are those faces."""

        # One snapshot for the latents and their labels: a projection may add a face between two reads of the
        # library, and labels read from a longer library would belong to other faces.
        entries = session.entries()
        latents = self.library_latents(session, entries=entries)
        stems = [Path(e.path).name if e.path else "" for e in entries]
        unlabelled = [n for n, s in zip(latents.names, stems, strict=True) if s not in self.labels]
        if not self.labels:
            return LatentSpace(latents, labels_unusable="the --faces folder has no attribute file")
        if unlabelled:
            return LatentSpace(
                latents, labels_unusable=f"{len(unlabelled)} library faces have no labels, e.g. {unlabelled[0]!r}"
            )
        labels = np.stack([self.labels[s] for s in stems])
        return LatentSpace(latents, self.attribute_names, labels, str(self.faces))

    # --- arithmetic ---------------------------------------------------------------------------------------

    def operator_params(self, options: list[str], used: list[str] | None = None) -> dict[str, dict]:
        """Operator parameters (`NAME.KEY=VALUE`, from the page's `params`), typed and checked by each operator's
        schema as `--param` is for `facemath math` (and named so in errors, as everywhere in the studio): {NAME: its
        parameters}."""
        return self.registry.params_for("operator", options, used=used)

    def evaluator(self, session: Session, exemplars: int = 3, seed: int = 0, params: dict | None = None):

        operators = {name: self.registry.get("operator", name) for name in self.registry.names("operator")}
        return Evaluator(self.space(session), operators, exemplars=exemplars, seed=seed, params=params)

    def math(self, session: Session, expression: str, params: dict | None = None) -> dict:
        """An expression of `facemath math`'s language: each term's face and the faces it came from, the result."""

        if not expression.strip():
            raise FacemathError("expression: empty; e.g. a - b + c with names from the library")
        evaluator = self.evaluator(session, params=params)
        example = work_out(evaluator, expression, jitter=0.0, variants=1)
        images = self.render(np.stack([*(t.z for t in example.terms), example.result.z]))
        terms = [
            {
                "sign": "+" if sign > 0 else "-",
                "text": text,
                "faces": [example.names[r] for r in term.rows],
                "image": images[i],
            }
            for i, (sign, text, term) in enumerate(zip(example.signs, example.term_texts, example.terms, strict=True))
        ]
        return {"terms": terms, "result": images[-1], "notes": evaluator.flag_notes()}

    # --- attribute sliders --------------------------------------------------------------------------------

    def sliders(self, session: Session) -> tuple[list[str], np.ndarray]:
        """The attributes with a vector (some library faces have it and some lack it) and their vectors, fitted
        with White's bias correction as `facemath attributes` does; fitted once per state of the library."""
        entries = session.entries()
        cached = session.sliders
        unchanged = cached is not None and len(cached[0]) == len(entries)
        if unchanged and all(x is y for x, y in zip(cached[0], entries, strict=True)):
            return cached[1]
        result = self._fit_sliders(entries)
        session.sliders = (entries, result)
        return result

    def _fit_sliders(self, entries) -> tuple[list[str], np.ndarray]:

        if not self.labels:
            raise FacemathError(
                "attribute sliders need labelled faces: start with --faces DIR holding an attribute file"
            )
        # Uploads have no labels: the vectors come from the library faces that do.
        labelled = [e for e in entries if e.path and Path(e.path).name in self.labels]
        if len(labelled) < 2:
            raise FacemathError(
                f"attribute sliders: {plural(len(labelled), 'labelled face')} in the library; project at least two "
                f"example faces that differ"
            )
        labels = np.stack([self.labels[Path(e.path).name] for e in labelled])
        vectors = attribute_vectors(np.stack([e.z for e in labelled]), labels, self.attribute_names)
        usable = [k for k in range(len(self.attribute_names)) if np.isfinite(vectors[k]).all()]
        if not usable:
            raise FacemathError(
                f"attribute sliders: every attribute is shared by all {len(labelled)} labelled faces or by none; "
                f"project faces that differ"
            )
        return [self.attribute_names[k] for k in usable], vectors[usable]

    def slide(self, session: Session, base: str, amounts: dict[str, float]) -> np.ndarray:
        names, vectors = self.sliders(session)
        z = session.entry(base).z.copy()
        for name, amount in amounts.items():
            if name not in names:
                raise FacemathError(f"attribute {name!r}: no slider (have: {', '.join(names)})")
            number = isinstance(amount, int | float) and not isinstance(amount, bool)  # JSON true is no amount
            if not (number and -SLIDER_RANGE <= amount <= SLIDER_RANGE):
                raise FacemathError(f"attribute {name}: {amount!r} is not a number in +-{SLIDER_RANGE:g}")
            z = z + float(amount) * vectors[names.index(name)]
        return self.render(z[None])[0]

    # --- interpolation and analogies ----------------------------------------------------------------------

    def interpolate(
        self, session: Session, names: list[str], method: str, t: float, params: dict | None = None
    ) -> np.ndarray:
        """The face at position t along A -> B -> C ... (t = 0 is A, 1 is B, 2 is C), through the operator plugin
        `method` (lerp, slerp) called as `facemath interpolate` calls it: op(a, b, t, **params)."""

        if not 2 <= len(names) <= MAX_INTERPOLATION_FACES:
            raise FacemathError(f"interpolation: choose 2 to {MAX_INTERPOLATION_FACES} library faces")
        if not 0 <= t <= len(names) - 1:
            raise FacemathError(f"interpolation: t={t} is outside 0..{len(names) - 1}")
        operator = self.registry.get("operator", method, option="method")
        check_operator(operator, 3, f"method {method}", params)
        segment = min(int(t), len(names) - 2)
        a, b = session.entry(names[segment]).z, session.entry(names[segment + 1]).z
        return self.render(interpolate(operator, a, b, [t - segment], params))[0]

    def analogy(self, session: Session, a: str, b: str, c: str, size: int, params: dict | None = None) -> np.ndarray:
        """White's J-diagram, as `facemath analogy` draws it; A, B and C are expressions over the library."""

        if not 2 <= size <= MAX_ANALOGY_SIZE:
            raise FacemathError(f"analogy size {size}: choose 2 to {MAX_ANALOGY_SIZE}")
        evaluator = self.evaluator(session, params=params)
        za, zb, zc = (evaluator.latent(e).z for e in (a, b, c))
        check_frames(size * size, self.image_size, "size")
        return analogy_figure(self.render(j_diagram_latents(za, zb, zc, size)), size, a, b, c)
