"""The studio's HTTP app (Starlette): the page, its static assets, and a JSON API over `engine` and `jobs`, in
route groups by what they serve (`studio/routes/`).

Every API route answers JSON. A bad input is a 4xx answer `{"error": "one line"}` that the page shows as it is; a
bug is a 500 with the same shape and no traceback; the server goes on either way. Long work (projection) runs in
a worker thread and streams its progress as Server-Sent Events; everything else runs in the server's thread pool,
so a projection in one session never blocks another session's requests. Who may send requests at all (the Host
names, the Origin, the token) is decided before any route, by `access.AccessMiddleware`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from facemath_core.studio.access import Access, AccessMiddleware
from facemath_core.studio.engine import Engine
from facemath_core.studio.routes import all_routes
from facemath_core.studio.sessions import SessionStore


def create_app(engine: Engine, store: SessionStore | None = None, access: Access | None = None) -> Starlette:
    """The studio's app. `access`: the address it answers to and its token (`access.Access`; default: the loopback
    names on port 8765, no token), checked by `AccessMiddleware` before any route runs."""
    store = store or SessionStore()
    access = access or Access()

    @asynccontextmanager
    async def lifespan(app):
        yield
        store.close()  # running projections stop; the sessions' uploads and files go with the server

    app = Starlette(
        routes=all_routes(engine, store), middleware=[Middleware(AccessMiddleware, access=access)], lifespan=lifespan
    )
    app.state.store, app.state.engine, app.state.access = store, engine, access
    return app
