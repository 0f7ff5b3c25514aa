"""Arithmetic on the library's faces: expressions worked term by term, attribute sliders, interpolation between
faces and the J-diagram of an analogy. Each renders in the server's thread pool."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute

from facemath_core.studio.engine import SLIDER_RANGE
from facemath_core.studio.jobs import data_url
from facemath_core.studio.routes.base import (
    BadRequest,
    RouteGroup,
    amounts_field,
    float_field,
    int_field,
    json_body,
    list_field,
    params_field,
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
        body = await json_body(request, ("expression", "params"))
        expression = text_field(body, "expression")
        params = self.engine.operator_params(params_field(body))
        worked = await run_in_threadpool(self.engine.math, session, expression, params)
        for term in worked["terms"]:
            term["image"] = data_url(term["image"])
        return {**worked, "result": data_url(worked["result"])}

    async def sliders(self, request: Request, session: Session):
        names, _ = await run_in_threadpool(self.engine.sliders, session)
        return {"attributes": names, "range": self.engine.menus()["slider_range"]}

    async def slide(self, request: Request, session: Session):
        body = await json_body(request, ("base", "amounts"))
        base = text_field(body, "base")
        amounts = amounts_field(body, "amounts", SLIDER_RANGE)
        image = await run_in_threadpool(self.engine.slide, session, base, amounts)
        return {"image": data_url(image)}

    async def interpolate(self, request: Request, session: Session):
        body = await json_body(request, ("names", "method", "t", "params"))
        names = list_field(body, "names", str)
        method = body.get("method", "slerp")
        if not isinstance(method, str):
            raise BadRequest("method: an operator name such as lerp or slerp")
        t = float_field(body, "t", 0.0)
        params = self.engine.operator_params(params_field(body), used=[method]).get(method)
        image = await run_in_threadpool(self.engine.interpolate, session, names, method, t, params)
        return {"image": data_url(image)}

    async def analogy(self, request: Request, session: Session):
        body = await json_body(request, ("a", "b", "c", "size", "params"))
        a, b, c = (text_field(body, k) for k in ("a", "b", "c"))
        size = int_field(body, "size", 5, 2, 9)
        params = self.engine.operator_params(params_field(body))
        image = await run_in_threadpool(self.engine.analogy, session, a, b, c, size, params)
        return {"image": data_url(image)}
