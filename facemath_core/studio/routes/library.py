"""The session's face library (every face projected so far) and its downloads: a picture of one face, the whole
library as a latents file."""

from __future__ import annotations

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from facemath_core.studio.routes.base import BadRequest, RouteGroup, finite_or_none, png
from facemath_core.studio.sessions import Session


class Library(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/api/library", self.faces),
            self.route("/api/library.npz", self.latents_file),
            self.route("/api/library/{name}", self.picture),
        ]

    async def faces(self, request: Request, session: Session):
        return {
            "faces": [
                {
                    "name": e.name,
                    "loss": finite_or_none(e.loss),
                    "psnr": finite_or_none(e.psnr),
                    "vae": e.vae_z is not None,
                    "vaegan": e.vaegan_z is not None,
                    "completion": e.completion is not None,
                }
                for e in session.entries()
            ]
        }

    async def picture(self, request: Request, session: Session):
        entry = session.entry(request.path_params["name"])
        kind = request.query_params.get("kind", "reconstruction")
        images = {"reconstruction": entry.reconstruction, "target": entry.target, "completion": entry.completion}
        if images.get(kind) is None:
            raise BadRequest(f"kind {kind!r}: choose reconstruction, target or completion (of a brushed face)")
        name = f"{Path(entry.name).stem}-{kind}.png"
        return png(images[kind], name if request.query_params.get("download") else None)

    async def latents_file(self, request: Request, session: Session):
        family = request.query_params.get("family", "gan")
        data = await run_in_threadpool(self.engine.library_npz, session, family, session.folder)
        headers = {"Content-Disposition": f'attachment; filename="latents-{family}.npz"'}
        return Response(data, media_type="application/octet-stream", headers=headers)
