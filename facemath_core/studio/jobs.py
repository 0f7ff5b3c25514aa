"""A projection (or brush completion) running in a worker thread, so the page and the API stay responsive.

It is the library's `ProjectionRun` (the same run as `facemath project`: seeds, restarts, flags, PSNR, blends), with
a sink that records events for the page's Server-Sent Events stream: the loss of every step, a render of the best z
so far a few times a second, and the end (`done`, possibly cancelled, or `failed` with one line). The projector
comes from the engine's `ProjectorCache`, so a second projection of the same settings starts with the traced loop
and checked contracts of the first. Cancelling keeps the best z reached so far.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.data.images import from_unit, to_unit
from facemath_core.projection.projector import Interval
from facemath_core.projection.run import JobInputs, MemorySink, ProjectionRun, RunResult
from facemath_core.studio.engine import Engine, png_bytes
from facemath_core.studio.sessions import Entry, Session

PREVIEW_SECONDS = 0.3  # how often the page gets a render of the best z so far
REPORT_SECONDS = 0.2  # how often the compiled loop comes back with the steps it ran


def data_url(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


@dataclass
class Face:
    image: np.ndarray  # (S, S, 3) uint8, the model's size
    path: str
    name: str


class _Events(MemorySink):
    """The run's progress as the page's events: one per step, each interval's last with a render of the best z so
    far when the last render is PREVIEW_SECONDS old (and at the last step)."""

    def __init__(self, job: ProjectionThread):
        super().__init__()
        self.job = job
        self.pending: list[dict] = []
        self.last_preview = 0.0

    def step(self, batch: int, step: int, mean: float, terms: dict[str, float]) -> None:
        event = {"type": "progress", "step": step, "steps": self.job.config.steps, "loss": _number(mean)}
        event["terms"] = {k: _number(v) for k, v in terms.items()}
        self.pending.append(event)

    def interval(self, batch: int, interval: Interval) -> None:
        events, self.pending = self.pending, []
        now = time.monotonic()
        if events and (now - self.last_preview > PREVIEW_SECONDS or events[-1]["step"] == self.job.config.steps):
            self.last_preview = now
            best_z, _ = interval.best()
            events[-1]["image"] = data_url(self.job.engine.render(best_z[:1], self.job.run.projector.model)[0])
        for event in events:
            self.job.emit(event)


class ProjectionThread:
    def __init__(self, engine: Engine, session: Session, faces: list[Face], config, mask: np.ndarray | None):
        self.engine, self.session, self.faces = engine, session, faces
        self.mask = mask  # (S, S), 1 = known; None: every pixel known
        # Built here, in the request, so a bad plugin or parameter is an error of the request, not of the stream.
        self.run = ProjectionRun(engine.backend, engine.registry, config, projectors=engine.projectors)
        self.config = self.run.config
        try:
            # Seeded per face as `facemath project` seeds it (base/seeds.py: --seed and the file name), so a face
            # starts where the CLI starts it, whatever else is projected with it.
            keys = [Path(f.path).name if f.path else f.name for f in faces]
            inputs = JobInputs(
                names=[f.name for f in faces],
                paths=[f.path for f in faces],
                images=to_unit(np.stack([f.image for f in faces])),
                resized=[],
                keys=keys,
            )
            masks = None if mask is None else np.repeat(mask.astype(np.float32)[None], len(faces), axis=0)
            self.prepared = self.run.prepare(inputs, masks)
        except BaseException:
            self.run.close()
            raise
        self.events: list[dict] = []
        self.finished = False
        self._changed = threading.Condition()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"studio-projection-{session.id[:6]}", daemon=True)

    @property
    def start_words(self) -> str:
        """Where the search starts, in words (the model's own encoder by default)."""
        return self.run.start

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def emit(self, event: dict, final: bool = False) -> None:
        with self._changed:
            self.events.append(event)
            self.finished = self.finished or final
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> tuple[list[dict], bool]:
        """The events after the first `seen`, waiting up to `timeout` for one; and whether the job has ended."""
        with self._changed:
            if len(self.events) <= seen and not self.finished:
                self._changed.wait(timeout)
            return self.events[seen:], self.finished

    # --- the worker -----------------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            names, cancelled = self._project()
            self.emit({"type": "done", "names": names, "cancelled": cancelled}, final=True)
        except FacemathError as exc:
            self.emit({"type": "failed", "message": " ".join(str(exc).split())}, final=True)
        except Exception as exc:  # a bug: the page says so in one line and the server goes on
            self.emit({"type": "failed", "message": f"internal error: {type(exc).__name__}: {exc}"}, final=True)

    def _project(self) -> tuple[list[str], bool]:
        sink = _Events(self)
        try:
            result = self.run.run(
                self.prepared, sink, stop=self._cancel.is_set, warn=lambda line: None, report_seconds=REPORT_SECONDS
            )
        finally:
            self.run.close()  # the projector goes back to the engine's cache for the next projection
        return self._keep(result), result.cancelled

    def _keep(self, result: RunResult) -> list[str]:
        """The results into the session library: G(z), PSNR of the known pixels, the VAE and VAE-GAN encodings, a
        completion."""
        latents = result.latents
        count = len(latents.names)
        images = np.stack([f.image for f in self.faces[:count]]) if count else None
        vae = self.engine.encode_vae(images) if count else None
        vaegan = self.engine.encode_vae(images, S.VAEGAN_ENCODER) if count else None
        names = []
        for i, face in enumerate(self.faces[:count]):
            completion = None if result.completions is None else from_unit(result.completions[i])
            name = self.session.unique_name(face.name)
            self.session.add(
                Entry(
                    name=name,
                    z=np.asarray(latents.z[i], np.float32),
                    target=face.image,
                    reconstruction=from_unit(result.generated[i]),
                    path=face.path,
                    loss=float(latents.losses["total"][i]),
                    psnr=float(latents.psnr[i]),
                    vae_z=None if vae is None else vae[i],
                    vaegan_z=None if vaegan is None else vaegan[i],
                    completion=completion,
                )
            )
            names.append(name)
        return names


def _number(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is sent as null."""
    return float(value) if np.isfinite(value) else None
