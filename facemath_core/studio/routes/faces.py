"""The faces a projection starts from: the example faces (`--faces`) and the visitor's uploads."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute

from facemath_core.base.errors import FacemathError
from facemath_core.data.images import read_image
from facemath_core.studio.jobs import data_url
from facemath_core.studio.routes.base import BadRequest, RouteGroup, png, read_body
from facemath_core.studio.sessions import Session

MAX_UPLOAD_BYTES = 16 * 1024**2  # far above a face photo; a bigger body is refused before it is all read


class Faces(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/api/faces/{name}", self.example_face),
            self.route("/api/upload", self.upload, methods=["POST"], body="image"),
        ]

    async def example_face(self, request: Request, session: Session):
        image, _ = await run_in_threadpool(self.engine.example, request.path_params["name"])
        return png(image)

    async def upload(self, request: Request, session: Session):
        name = request.query_params.get("name", "").strip()
        if not name or len(name) > 100 or any(c in name for c in "/\\\0") or name.startswith("."):
            raise BadRequest("upload: give the file's name (?name=face.png), at most 100 characters, no slashes")
        body = await read_body(request, MAX_UPLOAD_BYTES, name)
        path = session.upload_path(name)
        path.write_bytes(body)
        try:
            image = await run_in_threadpool(lambda: self.engine.model_sized(read_image(path)))
        except FacemathError as exc:
            path.unlink(missing_ok=True)
            session.uploads.pop(name, None)
            raise BadRequest(str(exc).replace(str(path), name)) from None
        return {"face": f"upload:{name}", "image": data_url(image)}
