"""The studio's HTTP app (Starlette): the page, its static assets, and a JSON API over `engine` and `jobs`.

Every API route answers JSON. A bad input is a 4xx answer `{"error": "one line"}` that the page shows as it is; a
bug is a 500 with the same shape and no traceback; the server goes on either way. Long work (projection) runs in
a worker thread and streams its progress as Server-Sent Events; everything else runs in the server's thread pool,
so a projection in one session never blocks another session's requests.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.data.images import read_image
from facemath_core.projection.settings import projection_config
from facemath_core.studio.engine import Engine, png_bytes
from facemath_core.studio.jobs import Face, ProjectionJob, data_url
from facemath_core.studio.sessions import COOKIE, Session, SessionStore

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 16 * 1024**2  # far above a face photo; a bigger body is refused before it is all read
MAX_JSON_BYTES = 1024**2
MAX_FACES_PER_JOB = 64
MAX_STEPS = 5000
log = logging.getLogger("facemath.studio")


class BadRequest(FacemathError):
    """A request the API cannot take (wrong JSON, a missing field); `status` is its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


Handler = Callable[[Request, Session], Awaitable[object]]


def create_app(engine: Engine, store: SessionStore | None = None) -> Starlette:
    store = store or SessionStore()

    def endpoint(handler: Handler):
        """Finds (or starts) the visitor's session, runs the handler and turns what it returns, or raises, into
        a response: a dict is JSON, an error is `{"error": ...}`."""

        async def run(request: Request) -> Response:
            session, created = store.get(request.cookies.get(COOKIE))
            try:
                result = await handler(request, session)
                response = result if isinstance(result, Response) else JSONResponse(result)
            except BadRequest as exc:
                response = _error(str(exc), exc.status)
            except FacemathError as exc:
                response = _error(str(exc), 400)
            except OSError as exc:
                response = _error(describe_os_error(exc), 400)
            except MemoryError:
                response = _error("out of memory; use fewer faces or a smaller size", 400)
            except Exception as exc:
                log.exception("studio: %s %s", request.method, request.url.path)
                response = _error(f"internal error: {type(exc).__name__}: {exc}", 500)
            if created:
                response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict")
            return response

        return run

    async def index(request: Request, session: Session):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def menus(request: Request, session: Session):
        return engine.menus()

    async def example_face(request: Request, session: Session):
        image, _ = await run_in_threadpool(engine.example, request.path_params["name"])
        return _png(image)

    async def upload(request: Request, session: Session):
        name = request.query_params.get("name", "").strip()
        if not name or len(name) > 100 or any(c in name for c in "/\\\0") or name.startswith("."):
            raise BadRequest("upload: give the file's name (?name=face.png), at most 100 characters, no slashes")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise BadRequest(f"{name}: {int(declared):,} bytes is over the {MAX_UPLOAD_BYTES:,} byte limit", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPLOAD_BYTES:
                raise BadRequest(f"{name}: over the {MAX_UPLOAD_BYTES:,} byte upload limit", 413)
        path = session.upload_path(name)
        path.write_bytes(bytes(body))
        try:
            image = await run_in_threadpool(lambda: engine.model_sized(read_image(path)))
        except FacemathError as exc:
            path.unlink(missing_ok=True)
            session.uploads.pop(name, None)
            raise BadRequest(str(exc).replace(str(path), name)) from None
        return {"face": f"upload:{name}", "image": data_url(image)}

    async def project(request: Request, session: Session):
        body = await _json(request)
        if session.job is not None and not session.job.finished:
            raise BadRequest("a projection is already running in this session; stop it first", 409)
        sources = _list(body, "faces", str)
        if not 1 <= len(sources) <= MAX_FACES_PER_JOB:
            raise BadRequest(f"faces: choose 1 to {MAX_FACES_PER_JOB} faces")
        steps = _int(body, "steps", 200, 1, MAX_STEPS)
        config = _config(engine, body, steps, len(sources))
        mask = _mask(body.get("mask"), engine.image_size)

        def start():
            faces = [Face(*engine.target(session, s)) for s in sources]
            job = ProjectionJob(engine, session, faces, config, mask)
            with session.lock:  # two requests at once: the second is refused here
                if session.job is not None and not session.job.finished:
                    raise BadRequest("a projection is already running in this session; stop it first", 409)
                session.job = job
            job.start()

        await run_in_threadpool(start)
        return {"started": len(sources), "steps": steps}

    async def events(request: Request, session: Session):
        job = session.job
        if job is None:
            raise BadRequest("no projection in this session yet", 404)
        last = request.headers.get("last-event-id", "")
        seen = int(last) + 1 if last.isdigit() else 0

        async def stream():
            nonlocal seen
            while True:
                new, finished = await run_in_threadpool(job.wait, seen, 1.0)
                if not new:
                    if finished:
                        return
                    yield ": still working\n\n"  # keeps proxies from closing an idle stream
                for event in new:
                    yield f"id: {seen}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                    seen += 1

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def cancel(request: Request, session: Session):
        job = session.job
        running = job is not None and not job.finished
        if running:
            job.cancel()
        return {"cancelled": running}

    async def library(request: Request, session: Session):
        return {
            "faces": [
                {
                    "name": e.name,
                    "loss": _finite(e.loss),
                    "psnr": _finite(e.psnr),
                    "vae": e.vae_z is not None,
                    "completion": e.completion is not None,
                }
                for e in session.entries()
            ]
        }

    async def library_image(request: Request, session: Session):
        entry = session.entry(request.path_params["name"])
        kind = request.query_params.get("kind", "reconstruction")
        images = {"reconstruction": entry.reconstruction, "target": entry.target, "completion": entry.completion}
        if images.get(kind) is None:
            raise BadRequest(f"kind {kind!r}: choose reconstruction, target or completion (of a brushed face)")
        name = f"{Path(entry.name).stem}-{kind}.png"
        return _png(images[kind], name if request.query_params.get("download") else None)

    async def library_npz(request: Request, session: Session):
        family = request.query_params.get("family", "gan")
        data = await run_in_threadpool(engine.library_npz, session, family, session.folder)
        headers = {"Content-Disposition": f'attachment; filename="latents-{family}.npz"'}
        return Response(data, media_type="application/octet-stream", headers=headers)

    async def math_(request: Request, session: Session):
        body = await _json(request)
        expression = _text(body, "expression")
        worked = await run_in_threadpool(engine.math, session, expression)
        for term in worked["terms"]:
            term["image"] = data_url(term["image"])
        return {**worked, "result": data_url(worked["result"])}

    async def sliders(request: Request, session: Session):
        names, _ = await run_in_threadpool(engine.sliders, session)
        return {"attributes": names, "range": engine.menus()["slider_range"]}

    async def slide(request: Request, session: Session):
        body = await _json(request)
        base = _text(body, "base")
        amounts = body.get("amounts", {})
        if not isinstance(amounts, dict):
            raise BadRequest("amounts: an object {attribute: number}")
        image = await run_in_threadpool(engine.slide, session, base, amounts)
        return {"image": data_url(image)}

    async def interpolate(request: Request, session: Session):
        body = await _json(request)
        names = _list(body, "names", str)
        method = body.get("method", "slerp")
        if not isinstance(method, str):
            raise BadRequest("method: an operator name such as lerp or slerp")
        t = _float(body, "t", 0.0)
        image = await run_in_threadpool(engine.interpolate, session, names, method, t)
        return {"image": data_url(image)}

    async def analogy(request: Request, session: Session):
        body = await _json(request)
        a, b, c = (_text(body, k) for k in ("a", "b", "c"))
        size = _int(body, "size", 5, 2, 9)
        image = await run_in_threadpool(engine.analogy, session, a, b, c, size)
        return {"image": data_url(image)}

    @asynccontextmanager
    async def lifespan(app):
        yield
        store.close()

    routes = [
        Route("/", endpoint(index)),
        Route("/api/menus", endpoint(menus)),
        Route("/api/faces/{name}", endpoint(example_face)),
        Route("/api/upload", endpoint(upload), methods=["POST"]),
        Route("/api/project", endpoint(project), methods=["POST"]),
        Route("/api/project/events", endpoint(events)),
        Route("/api/project/cancel", endpoint(cancel), methods=["POST"]),
        Route("/api/library", endpoint(library)),
        Route("/api/library.npz", endpoint(library_npz)),
        Route("/api/library/{name}", endpoint(library_image)),
        Route("/api/math", endpoint(math_), methods=["POST"]),
        Route("/api/sliders", endpoint(sliders)),
        Route("/api/slide", endpoint(slide), methods=["POST"]),
        Route("/api/interpolate", endpoint(interpolate), methods=["POST"]),
        Route("/api/analogy", endpoint(analogy), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store, app.state.engine = store, engine
    return app


# --- request parsing: each bad field is one line naming it -------------------------------------------------------


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _png(rgb: np.ndarray, download: str | None = None) -> Response:
    headers = {"Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download)}"
    return Response(png_bytes(rgb), media_type="image/png", headers=headers)


async def _json(request: Request) -> dict:
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise BadRequest(f"request body: over the {MAX_JSON_BYTES:,} byte limit", 413)
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadRequest(f"request body: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadRequest("request body: a JSON object {...}")
    return value


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key}: give a text value")
    if not value.strip():
        raise BadRequest(f"{key}: empty")
    return value


def _list(body: dict, key: str, kind: type) -> list:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise BadRequest(f"{key}: give a list of {kind.__name__} values")
    return value


def _int(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key}: {value!r} is not a whole number from {low} to {high}")
    return value


def _float(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key}: {value!r} is not a finite number")
    return float(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _config(engine: Engine, body: dict, steps: int, count: int):
    """The projection config, through the same function as `facemath project`'s options."""

    preset = body.get("preset") or None
    init = body.get("init") or "uniform"
    blender = body.get("blender") or None
    for key, value in (("preset", preset), ("init", init), ("blender", blender)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key}: give a name")
    losses = _list(body, "losses", str) if body.get("losses") else None
    lr = _float(body, "lr", 0.0) if body.get("lr") is not None else None
    return projection_config(
        engine.registry,
        preset=preset,
        loss_plugins=losses,
        lr=lr,
        steps=steps,
        init=init,
        blend=blender,
        seed=_int(body, "seed", 0, 0, 2**31 - 1),
        batch_size=count,
    )


def _mask(value, size: int) -> np.ndarray | None:
    """The brush mask: size*size numbers (row by row) in [0, 1], 1 = a known pixel, 0 = one to complete."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != size * size:
        raise BadRequest(f"mask: give {size * size} numbers ({size}x{size}, row by row), 1 = keep, 0 = complete")
    try:
        mask = np.asarray(value, np.float32).reshape(size, size)
    except (TypeError, ValueError):
        raise BadRequest("mask: every value must be a number from 0 to 1") from None
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise BadRequest("mask: every value must be a number from 0 to 1")
    if mask.min() >= 0.5:
        raise BadRequest("mask: nothing is painted; brush over the part of the face to complete")
    if mask.max() < 0.5:
        raise BadRequest("mask: everything is painted; leave some of the face to complete from")
    return mask
