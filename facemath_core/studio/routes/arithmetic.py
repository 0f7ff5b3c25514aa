"""Arithmetic on the library's faces: expressions worked term by term, attribute sliders, interpolation between
faces and the J-diagram of an analogy. Each renders in the server's thread pool."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute

from facemath_core.studio.jobs import data_url
from facemath_core.studio.routes.base import (
    BadRequest,
    RouteGroup,
    float_field,
    int_field,
    json_body,
    list_field,
    text_field,
)
from facemath_core.studio.sessions import Session


class Arithmetic(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/api/math", self.math, methods=["POST"]),
            self.route("/api/sliders", self.sliders),
            self.route("/api/slide", self.slide, methods=["POST"]),
            self.route("/api/interpolate", self.interpolate, methods=["POST"]),
            self.route("/api/analogy", self.analogy, methods=["POST"]),
        ]

    async def math(self, request: Request, session: Session):
        body = await json_body(request)
        expression = text_field(body, "expression")
        worked = await run_in_threadpool(self.engine.math, session, expression)
        for term in worked["terms"]:
            term["image"] = data_url(term["image"])
        return {**worked, "result": data_url(worked["result"])}

    async def sliders(self, request: Request, session: Session):
        names, _ = await run_in_threadpool(self.engine.sliders, session)
        return {"attributes": names, "range": self.engine.menus()["slider_range"]}

    async def slide(self, request: Request, session: Session):
        body = await json_body(request)
        base = text_field(body, "base")
        amounts = body.get("amounts", {})
        if not isinstance(amounts, dict):
            raise BadRequest("amounts: an object {attribute: number}")
        image = await run_in_threadpool(self.engine.slide, session, base, amounts)
        return {"image": data_url(image)}

    async def interpolate(self, request: Request, session: Session):
        body = await json_body(request)
        names = list_field(body, "names", str)
        method = body.get("method", "slerp")
        if not isinstance(method, str):
            raise BadRequest("method: an operator name such as lerp or slerp")
        t = float_field(body, "t", 0.0)
        image = await run_in_threadpool(self.engine.interpolate, session, names, method, t)
        return {"image": data_url(image)}

    async def analogy(self, request: Request, session: Session):
        body = await json_body(request)
        a, b, c = (text_field(body, k) for k in ("a", "b", "c"))
        size = int_field(body, "size", 5, 2, 9)
        image = await run_in_threadpool(self.engine.analogy, session, a, b, c, size)
        return {"image": data_url(image)}
