"""The studio's HTTP app (Starlette): the page, its static assets, and a JSON API over `engine` and `jobs`, in
route groups by what they serve (`studio/routes/`).

Every API route answers JSON. A bad input is a 4xx answer `{"error": "one line"}` that the page shows as it is; a
bug is a 500 with the same shape and no traceback; the server goes on either way. Long work (projection) runs in
a worker thread and streams its progress as Server-Sent Events; everything else runs in the server's thread pool,
so a projection in one session never blocks another session's requests.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.applications import Starlette

from facemath_core.studio.engine import Engine
from facemath_core.studio.routes import all_routes
from facemath_core.studio.sessions import SessionStore


def create_app(engine: Engine, store: SessionStore | None = None) -> Starlette:
    store = store or SessionStore()

    @asynccontextmanager
    async def lifespan(app):
        yield
        store.close()  # running projections stop; the sessions' uploads and files go with the server

    app = Starlette(routes=all_routes(engine, store), lifespan=lifespan)
    app.state.store, app.state.engine = store, engine
    return app
