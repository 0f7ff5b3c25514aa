"""The studio's routes, grouped by what they serve, one module each: `pages` (the page, its static files, its
menus), `faces` (example faces and uploads), `projection` (projection and completion jobs and their event stream),
`library` (the session's faces and their downloads), `arithmetic` (expressions, sliders, interpolation, analogies),
`photos` (a photo's faces found and aligned; the photo edited with the sliders).
`base` holds what they share: the endpoint wrapper and the request parsing."""

from __future__ import annotations

from starlette.routing import BaseRoute

from facemath_core.studio.engine import Engine
from facemath_core.studio.routes.arithmetic import Arithmetic
from facemath_core.studio.routes.faces import Faces
from facemath_core.studio.routes.library import Library
from facemath_core.studio.routes.pages import Pages
from facemath_core.studio.routes.photos import Photos
from facemath_core.studio.routes.projection import Projection
from facemath_core.studio.sessions import SessionStore

GROUPS = (Pages, Faces, Photos, Projection, Library, Arithmetic)


def all_routes(engine: Engine, store: SessionStore) -> list[BaseRoute]:
    return [route for group in GROUPS for route in group(engine, store).routes()]
