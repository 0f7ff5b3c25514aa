"""What every route group shares: the endpoint wrapper (the visitor's session; what a handler returns or raises,
as a response) and the request parsing, where each bad field is one line naming it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.studio.engine import Engine, png_bytes
from facemath_core.studio.sessions import COOKIE, Session, SessionStore

MAX_JSON_BYTES = 1024**2
log = logging.getLogger("facemath.studio")

Handler = Callable[[Request, Session], Awaitable[object]]


class BadRequest(FacemathError):
    """A request the API cannot take (wrong JSON, a missing field); `status` is its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class RouteGroup:
    """Routes that serve one thing, over the studio's engine and its visitors' sessions. A group lists its routes
    in `routes()`; each handler is an `async (request, session)` method that returns a dict (sent as JSON) or a
    response, or raises."""

    def __init__(self, engine: Engine, store: SessionStore):
        self.engine = engine
        self.store = store

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def route(self, path: str, handler: Handler, methods: list[str] | None = None) -> Route:
        return Route(path, endpoint(self.store, handler), methods=methods)


def endpoint(store: SessionStore, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Finds (or starts) the visitor's session, runs the handler and turns what it returns, or raises, into a
    response: a dict is JSON, an error is `{"error": ...}`."""

    async def run(request: Request) -> Response:
        session, created = store.get(request.cookies.get(COOKIE))
        try:
            result = await handler(request, session)
            response = result if isinstance(result, Response) else JSONResponse(result)
        except BadRequest as exc:
            response = error(str(exc), exc.status)
        except FacemathError as exc:
            response = error(str(exc), 400)
        except OSError as exc:
            response = error(describe_os_error(exc), 400)
        except MemoryError:
            response = error("out of memory; use fewer faces or a smaller size", 400)
        except Exception as exc:
            log.exception("studio: %s %s", request.method, request.url.path)
            response = error(f"internal error: {type(exc).__name__}: {exc}", 500)
        if created:
            response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict")
        return response

    return run


# --- responses -------------------------------------------------------------------------------------------------


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def png(rgb: np.ndarray, download: str | None = None) -> Response:
    """A picture, never cached; `download` names the file the browser saves it as."""
    headers = {"Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download)}"
    return Response(png_bytes(rgb), media_type="image/png", headers=headers)


def finite_or_none(value: float) -> float | None:
    """A number for JSON, which has no NaN or infinity."""
    return value if math.isfinite(value) else None


# --- request parsing: each bad field is one line naming it -----------------------------------------------------


async def json_body(request: Request) -> dict:
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


def text_field(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key}: give a text value")
    if not value.strip():
        raise BadRequest(f"{key}: empty")
    return value


def list_field(body: dict, key: str, kind: type) -> list:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise BadRequest(f"{key}: give a list of {kind.__name__} values")
    return value


def int_field(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key}: {value!r} is not a whole number from {low} to {high}")
    return value


def float_field(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key}: {value!r} is not a finite number")
    return float(value)
