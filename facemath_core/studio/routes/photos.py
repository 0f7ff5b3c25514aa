"""Photos in the studio (issue 26): an uploaded photo's faces found and aligned to the model's landmark template,
each joining the uploads ready to project; and the photo edited, its projected faces moved along the attribute
sliders and pasted back into it, as `facemath edit` does.

What a session knows of its photos is kept in its own folder (`photos.json`): the photo's upload, the template and
each face's transform, so an edit warps each face back exactly where it was found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.data.align import AlignedFace, Aligner, Template, celeba_template, model_template, paste
from facemath_core.data.images import read_image, save_png
from facemath_core.host.components import DetectedFace
from facemath_core.studio.engine import SLIDER_RANGE
from facemath_core.studio.jobs import data_url
from facemath_core.studio.routes.base import BadRequest, RouteGroup, json_body, read_body, text_field
from facemath_core.studio.routes.faces import MAX_UPLOAD_BYTES
from facemath_core.studio.sessions import Session

PHOTOS_FILE = "photos.json"


class Photos(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/api/photo", self.upload, methods=["POST"], body="image"),
            self.route("/api/photo-edit", self.edit, methods=["POST"]),
        ]

    async def upload(self, request: Request, session: Session):
        name = request.query_params.get("name", "").strip()
        if not name or len(name) > 100 or any(c in name for c in "/\\\0") or name.startswith("."):
            raise BadRequest("photo: give the file's name (?name=photo.jpg), at most 100 characters, no slashes")
        body = await read_body(request, MAX_UPLOAD_BYTES, name)
        path = session.upload_path(name)
        path.write_bytes(body)
        try:
            faces = await run_in_threadpool(align_upload, self.engine, session, name, path)
        except FacemathError as exc:
            path.unlink(missing_ok=True)
            session.uploads.pop(name, None)
            raise BadRequest(str(exc).replace(str(path), name)) from None
        return {
            "photo": name,
            "faces": [{"face": f"upload:{f.name}", "name": f.name, "image": data_url(f.crop)} for f in faces],
        }

    async def edit(self, request: Request, session: Session):
        body = await json_body(request, ("photo", "amounts", "blend"))
        photo = text_field(body, "photo")
        amounts = body.get("amounts", {})
        if not isinstance(amounts, dict):
            raise BadRequest("amounts: an object {attribute: number}")
        blend = body.get("blend", "feather")
        if not isinstance(blend, str):
            raise BadRequest("blend: a blender name such as feather or poisson")
        image = await run_in_threadpool(edit_photo, self.engine, session, photo, amounts, blend)
        return {"image": data_url(image)}


def _template(engine) -> Template:
    """The generator's own template, CelebA's standard one for a model exported without."""
    meta = engine.backend.metadata(S.GENERATOR)
    return model_template(meta, S.GENERATOR, engine.image_size) or celeba_template(engine.image_size)


def _records(session: Session) -> dict:
    path = session.folder / PHOTOS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def align_upload(engine, session: Session, name: str, path: Path) -> list[AlignedFace]:
    """Find and align the photo's faces; each crop becomes an upload (`upload:PHOTO_1.png`, ...)."""
    template = _template(engine)
    faces = Aligner(engine.registry, template).align(read_image(path), name, name)
    for face in faces:
        save_png(session.upload_path(face.name), face.crop)
    records = _records(session)
    records[name] = {"template": template.record(), "faces": [face.record() for face in faces]}
    (session.folder / PHOTOS_FILE).write_text(json.dumps(records))
    return faces


def _projected(session: Session, face: str):
    """The library entry projected from a face of the photo (its latest projection)."""
    stem, dot, suffix = face.rpartition(".")
    matches = [e for e in session.entries() if e.name == face or (e.name.startswith(f"{stem}-") and dot)]
    if not matches:
        raise FacemathError(f"{face}: not in the library yet; project the photo's faces first")
    return matches[-1]


def edit_photo(engine, session: Session, photo: str, amounts: dict, blend: str) -> np.ndarray:
    """The photo with each of its projected faces moved along the sliders' attribute vectors and pasted back."""
    record = _records(session).get(photo)
    if record is None or photo not in session.uploads:
        raise FacemathError(f"no photo named {photo!r} in this session: upload it with its faces aligned")
    names, vectors = engine.sliders(session)
    delta = np.zeros(engine.z_dim, np.float32)
    for attribute, amount in amounts.items():
        if attribute not in names:
            raise FacemathError(f"attribute {attribute!r}: no slider (have: {', '.join(names)})")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not abs(amount) <= SLIDER_RANGE:
            raise FacemathError(f"attribute {attribute}: {amount!r} is not a number in +-{SLIDER_RANGE:g}")
        delta += float(amount) * vectors[names.index(attribute)]
    faces = [_aligned(face) for face in record["faces"]]
    z = np.stack([_projected(session, face.name).z for face in faces]) + delta[None]
    blender = engine.registry.get("blender", blend, option="blend")
    template = Template.from_record(record["template"], photo)
    image, _ = paste(
        read_image(session.uploads[photo]),
        list(zip(faces, engine.render(z), strict=True)),
        template,
        blender,
        dict(blender.defaults),
    )
    return image


def _aligned(record: dict) -> AlignedFace:
    """An aligned face as photos.json records it (what pasting back needs: its name and transform)."""
    face = DetectedFace(tuple(record["box"]), tuple(map(tuple, record["landmarks"])), float(record["score"]))
    size = int(record["size"])
    matrix = np.asarray(record["transform"], np.float64)
    return AlignedFace(
        record["photo"],
        record["name"],
        int(record["face"]),
        face,
        matrix,
        np.zeros((size, size, 3), np.uint8),
        bool(record["padded"]),
    )
