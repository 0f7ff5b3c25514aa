"""The page itself: its HTML, its static assets (script, style) and the menus it fills on load."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from facemath_core.studio.routes.base import RouteGroup
from facemath_core.studio.sessions import Session

STATIC = Path(__file__).parents[1] / "static"


class Pages(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/", self.index, page=True),
            self.route("/api/menus", self.menus),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    async def index(self, request: Request, session: Session):
        # Through the endpoint wrapper, so that loading the page from the studio starts a session (its cookie).
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def menus(self, request: Request, session: Session):
        return self.engine.menus()
