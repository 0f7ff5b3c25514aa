"""Projection jobs: start one (a completion when the request brings a brushed mask), follow it as a stream of
Server-Sent Events, stop it. The job runs in a worker thread (`jobs.ProjectionThread`), so the other routes and the
other sessions go on meanwhile."""

from __future__ import annotations

import json

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute

from facemath_core.projection.settings import projection_config
from facemath_core.studio.engine import Engine
from facemath_core.studio.jobs import Face, ProjectionThread
from facemath_core.studio.routes.base import (
    BadRequest,
    RouteGroup,
    float_field,
    int_field,
    json_body,
    last_event_id,
    list_field,
    name_field,
    params_field,
)
from facemath_core.studio.sessions import Session

MAX_FACES_PER_JOB = 64
MAX_STEPS = 5000
# What a projection request may say (anything else is refused, naming it): the faces and the options of
# `facemath project`, each component's parameters as {NAME: {KEY: value}} (`--param NAME.KEY=VALUE`).
PROJECT_FIELDS = (
    "faces", "steps", "preset", "init", "losses", "optimizer", "lr", "constraint", "params", "seed", "blender", "mask",
)  # fmt: skip


class Projection(RouteGroup):
    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/api/project", self.project, methods=["POST"]),
            self.route("/api/project/events", self.events),
            self.route("/api/project/cancel", self.cancel, methods=["POST"]),
        ]

    async def project(self, request: Request, session: Session):
        body = await json_body(request, PROJECT_FIELDS)
        if session.job is not None and not session.job.finished:
            raise BadRequest("a projection is already running in this session; stop it first", 409)
        sources = list_field(body, "faces", str)
        if not 1 <= len(sources) <= MAX_FACES_PER_JOB:
            raise BadRequest(f"faces: choose 1 to {MAX_FACES_PER_JOB} faces")
        steps = int_field(body, "steps", 200, 1, MAX_STEPS)
        config = settings(self.engine, body, steps, len(sources))
        mask = brushed_mask(body.get("mask"), self.engine.image_size)

        def start():
            faces = [Face(*self.engine.target(session, s)) for s in sources]
            job = ProjectionThread(self.engine, session, faces, config, mask)
            with session.lock:  # two requests at once: the second is refused here
                if session.job is not None and not session.job.finished:
                    job.run.close()  # its projector goes back unused
                    raise BadRequest("a projection is already running in this session; stop it first", 409)
                session.job = job
            job.start()
            return job

        job = await run_in_threadpool(start)
        return {"started": len(sources), "steps": steps, "start": job.start_words}

    async def events(self, request: Request, session: Session):
        job = session.job
        if job is None:
            raise BadRequest("no projection in this session yet", 404)
        seen = last_event_id(request)

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

    async def cancel(self, request: Request, session: Session):
        await json_body(request, ())
        job = session.job
        running = job is not None and not job.finished
        if running:
            job.cancel()
        return {"cancelled": running}


def settings(engine: Engine, body: dict, steps: int, count: int):
    """The projection config, through the same function as `facemath project`'s options."""

    preset, init, blender = name_field(body, "preset"), name_field(body, "init"), name_field(body, "blender")
    # init None: the best start, the model's own encoder when it has one
    losses = list_field(body, "losses", str) if body.get("losses") else None
    lr = float_field(body, "lr", 0.0) if body.get("lr") is not None else None
    return projection_config(
        engine.registry,
        preset=preset,
        loss_plugins=losses,
        params=params_field(body),
        optimizer=name_field(body, "optimizer"),
        lr=lr,
        steps=steps,
        init=init,
        constraint=name_field(body, "constraint"),
        blend=blender,
        seed=int_field(body, "seed", 0, 0, 2**31 - 1),
        batch_size=count,
    )


def brushed_mask(value, size: int) -> np.ndarray | None:
    """The brush mask of a completion: size*size numbers (row by row) in [0, 1], 1 = a known pixel, 0 = one to
    complete; None (no mask) is a plain projection."""
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
