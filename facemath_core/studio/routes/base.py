"""What every route group shares: the endpoint wrapper (the body a route takes, the visitor's session; what a
handler returns or raises, as a response) and the request parsing, where each bad field is one line naming it."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import quote

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from facemath_core.base.errors import FacemathError, describe_os_error
from facemath_core.studio.access import SAFE_METHODS
from facemath_core.studio.engine import Engine, png_bytes
from facemath_core.studio.sessions import Session, SessionStore, StudioBusy

MAX_JSON_BYTES = 1024**2
MAX_JSON_DEPTH = 16  # the deepest body a route takes is 3 levels ({"params": {NAME: {KEY: value}}})
log = logging.getLogger("facemath.studio")

Handler = Callable[[Request, Session], Awaitable[object]]

# The bodies a route takes, by the content types it accepts. A page of another site can send a POST only with a
# "simple" content type (text/plain, a form) unless the server grants a CORS preflight, which the studio never does:
# requiring these types keeps such requests out even from a browser that sends no Origin.
BODY_TYPES = {"json": ("application/json",), "image": ("image/", "application/octet-stream")}


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

    def route(
        self, path: str, handler: Handler, methods: list[str] | None = None, body: str = "json", page: bool = False
    ) -> Route:
        """A route; a POST takes a `body` of that kind (json, image); `page`: loading it starts a session."""
        return Route(path, endpoint(self.store, handler, body, page), methods=methods)


def endpoint(store: SessionStore, handler: Handler, body: str = "json", page: bool = False):
    """Checks the content type, finds the visitor's session (or starts one: see `visitor`), runs the handler and
    turns what it returns, or raises, into a response: a dict is JSON, an error is `{"error": ...}`."""

    async def run(request: Request) -> Response:
        cookie = request.app.state.access.session_cookie
        created = False
        try:
            if request.method not in SAFE_METHODS:
                check_content_type(request, body)
            session, created = visitor(request, store, cookie, page)
            result = await handler(request, session)
            response = result if isinstance(result, Response) else JSONResponse(result)
        except BadRequest as exc:
            response = error(str(exc), exc.status)
        except StudioBusy as exc:
            response = error(str(exc), 503)
        except FacemathError as exc:
            response = error(str(exc), 400)
        except OSError as exc:
            response = error(describe_os_error(exc), 400)
        except MemoryError:
            response = error("out of memory; use fewer faces or a smaller size", 400)
        except Exception as exc:
            log.exception("studio: %s %s", request.method, request.url.path)
            response = error(f"internal error: {type(exc).__name__}: {exc}", 500)
        if created and response.status_code >= 400:
            store.discard(session)  # a refused request makes no session
        elif created:
            response.set_cookie(cookie, session.id, httponly=True, samesite="strict")
        return response

    return run


def visitor(request: Request, store: SessionStore, cookie: str, page: bool) -> tuple[Session, bool]:
    """The request's session, and whether it was made now. A session is made only by a request that changes
    something (it passed the Origin and content-type checks: it is the studio's page or not a browser) or by loading
    the page from the studio itself (or by typing its address); any other request without a session reads a blank
    one. So no request another site can make, and no health check, makes a session or pushes one out."""
    session = store.find(request.cookies.get(cookie))
    if session is not None:
        return session, False
    own_page = page and request.headers.get("sec-fetch-site") in (None, "none", "same-origin")
    if request.method not in SAFE_METHODS or own_page:
        return store.create(), True
    return store.blank(), False


def check_content_type(request: Request, body: str) -> None:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    accepted = BODY_TYPES[body]
    if not any(given == kind or (kind.endswith("/") and given.startswith(kind)) for kind in accepted):
        what = f"Content-Type {shown(given)}" if given else "no Content-Type"
        wanted = " or ".join(f"{kind}*" if kind.endswith("/") else kind for kind in accepted)
        raise BadRequest(f"{what}: {request.url.path} takes {wanted}", 415)


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


async def read_body(request: Request, limit: int, what: str = "request body") -> bytes:
    """The body, refused (413) as soon as it is over `limit` bytes: declared so, or while it streams in, so a huge
    or endless chunked body costs no more than `limit` of memory."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 15 or int(declared) > limit):
        raise BadRequest(f"{what}: {_size(declared)} bytes is over the {limit:,} byte limit", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"{what}: over the {limit:,} byte limit", 413)
    return bytes(body)


async def json_body(request: Request, fields: Iterable[str]) -> dict:
    """The JSON object of the body; a key that is not one of `fields` is refused, naming it (a misspelt or
    unsupported field never silently does nothing)."""
    body = await read_body(request, MAX_JSON_BYTES)
    try:
        value = json.loads(body or b"{}")
    except RecursionError:
        raise BadRequest(f"request body: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise BadRequest(f"request body: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadRequest("request body: a JSON object {...}")
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    fields = tuple(fields)
    unknown = [key for key in value if key not in fields]
    if unknown:
        takes = ", ".join(fields) or "no fields"
        raise BadRequest(f"request body: unknown field {shown(unknown[0])} ({request.url.path} takes: {takes})")
    return value


def _depth(value) -> int:
    """How deeply lists and objects nest in a JSON value (without recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _size(digits: str) -> str:
    return f"{int(digits):,}" if len(digits) <= 15 else f"{digits[:6]}... ({len(digits)} digits)"


def shown(value, limit: int = 60) -> str:
    """A value in a message: its repr, cut short (a field may hold a megabyte)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text_field(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f"{key}: give a text value")
    if not value.strip():
        raise BadRequest(f"{key}: empty")
    return value


def name_field(body: dict, key: str) -> str | None:
    """An optional component name: absent, null or empty is None (the default)."""
    value = body.get(key) or None
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key}: give a name, not {shown(value)}")
    return value


def list_field(body: dict, key: str, kind: type) -> list:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise BadRequest(f"{key}: give a list of {kind.__name__} values")
    return value


def int_field(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{key}: {shown(value)} is not a whole number from {low} to {high}")
    return value


def is_number(value) -> bool:
    """A finite JSON number (true and false are not numbers, though Python counts them as ints)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def float_field(body: dict, key: str, default: float) -> float:
    value = body.get(key, default)
    if not is_number(value):
        raise BadRequest(f"{key}: {shown(value)} is not a finite number")
    return float(value)


def amounts_field(body: dict, key: str, limit: float) -> dict[str, float]:
    """{NAME: number} with every number within +-limit."""
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise BadRequest(f"{key}: an object {{attribute: number}}")
    for name, amount in value.items():
        if not is_number(amount) or not -limit <= amount <= limit:
            raise BadRequest(f"{key}: {name}: {shown(amount)} is not a number from {-limit:g} to {limit:g}")
    return {name: float(amount) for name, amount in value.items()}


def params_field(body: dict, key: str = "params") -> list[str]:
    """Component parameters {NAME: {KEY: value}} as the command line's `--param NAME.KEY=VALUE` options, which the
    library types and checks by each component's declared schema (the same messages as the CLI's)."""
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise BadRequest(f"{key}: an object {{component: {{parameter: value}}}}")
    options = []
    for name, given in value.items():
        for param, item in given.items():
            if not name or not param or any(c in "=." for c in name + param):
                raise BadRequest(f"{key}: {shown(name)}.{shown(param)} is not a component name and parameter name")
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif is_number(item):
                text = repr(item)
            elif isinstance(item, str):
                text = item
            else:
                raise BadRequest(f"{key}: {name}.{param}: {shown(item)} is not a number, text, true or false")
            options.append(f"{name}.{param}={text}")
    return options


def last_event_id(request: Request) -> int:
    """Where an event stream resumes: after the event of the `Last-Event-ID` header (an id this server sent: a
    whole number), or from the start."""
    value = request.headers.get("last-event-id", "")
    if not value:
        return 0
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise BadRequest(f"Last-Event-ID: {shown(value)} is not an event number of this stream")
    return int(value) + 1
