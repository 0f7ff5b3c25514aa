"""Who may use the studio: the rules local development servers apply (Jupyter, webpack-dev-server, Vite), as one
ASGI middleware in front of every route.

A server on 127.0.0.1 is reachable by every web page the user's browser opens, not only by the studio's own page:

- DNS rebinding: a site whose name resolves to 127.0.0.1 talks to the studio as if it were its own. Only the Host
  names the studio was started for are answered (127.0.0.1, localhost, [::1], `--host`, `--allow-host`, each with
  the port); the rebinding page sends its own name and gets 403.
- cross-site requests: any page can send a POST to 127.0.0.1 (a form, or fetch with a "simple" content type). A
  request whose Origin is not the studio's own is refused, and so is any request that the browser marks as coming
  from another site (`Sec-Fetch-Site`), except a plain navigation to the page itself (a link to the studio works).
  The routes themselves require a JSON (or image) content type, which a cross-site page cannot send without a CORS
  preflight that the studio never grants (`routes/base.py`).
- other machines: when the studio listens on an address that is not loopback, or with `--token`, every request
  needs the per-start token, as Jupyter's does. The printed address carries it (`/?token=...`); opening it sets an
  HTTP-only cookie and redirects to the same page without the token in the address bar. Scripts may send
  `Authorization: token ...` instead.

Every refusal is a 403 with the one-line JSON error every route answers (`{"error": ...}`). Starlette's own
TrustedHostMiddleware is not used: it ignores the port, and answers a plain-text 400.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """Whether an address reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(name: str) -> str:
    """A host name as it appears in a URL or a Host header: an IPv6 address in brackets."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


@dataclass(frozen=True)
class Access:
    """The studio's address and who may use it: the host names it answers to (each with `port`), and the access
    token every request must bring (None: no token)."""

    port: int = DEFAULT_PORT
    names: tuple[str, ...] = LOOPBACK_NAMES
    token: str | None = field(default=None, repr=False)

    @classmethod
    def for_address(cls, host: str, port: int, allow: tuple[str, ...] = (), token: bool = False) -> Access:
        """What a studio listening on host:port answers to: the loopback names always; `host` itself, or this
        machine's name for a wildcard address (0.0.0.0, ::); the names in `allow` (a DNS name of the machine, its LAN
        address). A per-start token is required when `host` is not loopback, or when `token` is True."""
        names = [*LOOPBACK_NAMES, socket.gethostname() if host in WILDCARD else host]
        names += [name.strip().strip("[]") for name in allow if name.strip()]
        required = token or not is_loopback(host)
        unique = tuple(dict.fromkeys(name.lower() for name in names))
        return cls(port, unique, secrets.token_urlsafe(24) if required else None)

    @property
    def hosts(self) -> frozenset[str]:
        """Every Host header value answered: NAME:PORT (and NAME alone on port 80, which browsers leave out)."""
        values = {f"{_shown(name)}:{self.port}" for name in self.names}
        if self.port == 80:
            values |= {_shown(name) for name in self.names}
        return frozenset(values)

    @property
    def session_cookie(self) -> str:
        # Cookies ignore ports: two studios on one machine keep their sessions apart by the cookies' names.
        return f"facemath_studio_{self.port}"

    @property
    def token_cookie(self) -> str:
        return f"facemath_token_{self.port}"

    def url(self, name: str | None = None) -> str:
        """The address to open, with the token when one is required."""
        port = "" if self.port == 80 else f":{self.port}"
        return f"http://{_shown(name or self.names[0])}{port}/" + (f"?token={self.token}" if self.token else "")


class AccessMiddleware:
    """Refuses, with a 403 and one line, what `Access` does not allow; lets the rest through to the routes."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access
        self.hosts = access.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (start and stop); the studio has no websockets
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        answer = self._host(headers)
        if answer is None and self.access.token is not None:
            answer = self._token_in_query(scope) or self._token(headers)
        answer = answer or self._site(scope, headers) or self._origin(scope, headers)
        await (answer or self.app)(scope, receive, send)

    # --- the rules: each returns a refusal (or the token's redirect), or None to go on ---------------------------

    def _host(self, headers: Headers) -> Response | None:
        host = headers.get("host")
        if host is not None and host.lower() in self.hosts:
            return None
        shown = "no Host header" if host is None else f"Host {_clip(host)}"
        return refuse(
            f"{shown}: this studio answers only to {', '.join(sorted(self.hosts))} (a page of another site cannot "
            f"use it); start it with --allow-host NAME to add a name"
        )

    def _token_in_query(self, scope: Scope) -> Response | None:
        """The token in the query (the printed address): a GET is redirected to the same address without it, and
        the answer sets the token cookie; a wrong token is refused."""
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for key, value in pairs if key == "token"]
        if not given:
            return None
        if not self._valid(given[-1]):
            return refuse("a wrong access token: open the address `facemath studio` printed")
        if scope["method"] != "GET":
            return None  # a POST carrying it in its query is let through by the cookie or header check below
        rest = urlencode([(key, value) for key, value in pairs if key != "token"])
        answer = Response(status_code=303, headers={"Location": scope["path"] + (f"?{rest}" if rest else "")})
        answer.headers["Cache-Control"] = "no-store"
        answer.set_cookie(self.access.token_cookie, self.access.token, httponly=True, samesite="strict")
        return answer

    def _token(self, headers: Headers) -> Response | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        given = [cookie_parser(headers.get("cookie", "")).get(self.access.token_cookie)]
        given.append(value.strip() if scheme.lower() in ("token", "bearer") else None)
        if any(g and self._valid(g) for g in given):
            return None
        what = "a wrong access token" if any(given) else "no access token"
        return refuse(f"{what}: open the address `facemath studio` printed (it ends in /?token=...)")

    def _valid(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.access.token.encode("utf-8"))

    def _site(self, scope: Scope, headers: Headers) -> Response | None:
        """Fetch metadata: the browser says where a request comes from. Another site (or another port of this host,
        which browsers count as the same site) may only navigate to the page."""
        site = headers.get("sec-fetch-site")
        if site in (None, "same-origin", "none"):
            return None
        if scope["method"] == "GET" and headers.get("sec-fetch-mode") == "navigate" and scope["path"] == "/":
            return None  # a link to the studio; the page then talks to it from its own origin
        return refuse(f"a request from another site ({_clip(site)}) for {scope['path']}: only the studio's page may")

    def _origin(self, scope: Scope, headers: Headers) -> Response | None:
        origin = headers.get("origin")
        if origin is None:  # not a browser, or a same-origin GET: the rules above decided
            return None
        own = f"http://{headers.get('host', '').lower()}"
        if origin.lower() == own:
            return None
        what = "read it" if scope["method"] in SAFE_METHODS else "change anything"
        return refuse(f"Origin {_clip(origin)}: only the studio's own page ({own}) may {what}")


def refuse(message: str) -> Response:
    return JSONResponse({"error": " ".join(message.split())}, status_code=403)


def _clip(text: str, limit: int = 80) -> str:
    """A header value in a message: quoted, escaped, and short."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
