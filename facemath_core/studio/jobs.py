"""A projection (or brush completion) running in a worker thread, so the page and the API stay responsive.

It runs the library's `Projector` (the same step, plugins and backend as `facemath project`) and records events
for the page's Server-Sent Events stream: the loss of every step, a render of the best z so far a few times a
second, and the end (`done`, possibly cancelled, or `failed` with one line). Cancelling keeps the best z reached so far.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import known_psnr
from facemath_core.base.seeds import row_seeds
from facemath_core.data.images import from_unit, to_unit
from facemath_core.host.contracts import blend, check_blender
from facemath_core.host.manager import check_params
from facemath_core.projection.projector import Projector
from facemath_core.studio.engine import Engine, png_bytes
from facemath_core.studio.sessions import Entry, Session

PREVIEW_SECONDS = 0.3  # how often the page gets a render of the best z so far


def data_url(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


@dataclass
class Face:
    image: np.ndarray  # (S, S, 3) uint8, the model's size
    path: str
    name: str


class _Cancelled(Exception):
    pass


class ProjectionJob:
    def __init__(self, engine: Engine, session: Session, faces: list[Face], config, mask: np.ndarray | None):

        self.engine, self.session, self.faces, self.config = engine, session, faces, config
        self.mask = mask  # (S, S), 1 = known; None: every pixel known
        # Built here, in the request, so a bad plugin or parameter is an error of the request, not of the stream.
        self.projector = Projector(engine.backend, engine.registry, config)
        self.blender = engine.registry.get("blender", config.blend, option="blender")
        self.blend_params = check_params(self.blender, config.blend_params)
        if mask is not None:
            check_blender(self.blender, self.blend_params, engine.image_size)
        self.events: list[dict] = []
        self.finished = False
        self._changed = threading.Condition()
        self._cancel = threading.Event()
        self._best: tuple[np.ndarray, np.ndarray] | None = None  # (best z, its loss) at the last step
        self._thread = threading.Thread(target=self._run, name=f"studio-projection-{session.id[:6]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _emit(self, event: dict, final: bool = False) -> None:
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

    def _run(self) -> None:
        try:
            names, cancelled = self._project()
            self._emit({"type": "done", "names": names, "cancelled": cancelled}, final=True)
        except FacemathError as exc:
            self._emit({"type": "failed", "message": " ".join(str(exc).split())}, final=True)
        except Exception as exc:  # a bug: the page says so in one line and the server goes on
            self._emit({"type": "failed", "message": f"internal error: {type(exc).__name__}: {exc}"}, final=True)

    def _project(self) -> tuple[list[str], bool]:
        cfg, engine = self.config, self.engine
        targets = to_unit(np.stack([f.image for f in self.faces]))
        size = engine.image_size
        known = np.ones((size, size), np.float32) if self.mask is None else self.mask.astype(np.float32)
        masks = np.repeat(known[None], len(self.faces), axis=0)
        # Seeded per face as `facemath project` seeds it (facemath_core.base.seeds: --seed and the file name), so a face
        # starts where the CLI starts it, whatever else is projected with it.
        keys = [Path(f.path).name if f.path else f.name for f in self.faces]
        z0 = self.projector.seeded_initial_z(targets, keys)
        last_preview = [0.0]

        def on_step(step, mean, terms):
            if self._cancel.is_set():
                raise _Cancelled
            event = {"type": "progress", "step": step, "steps": cfg.steps, "loss": _number(mean)}
            event["terms"] = {k: _number(v) for k, v in terms.items()}
            now = time.monotonic()
            if self._best is not None and (now - last_preview[0] > PREVIEW_SECONDS or step == cfg.steps):
                last_preview[0] = now
                event["image"] = data_url(engine.render(self._best[0][:1])[0])
            self._emit(event)

        def on_snapshot(state):
            self._best = state["best_z"].copy(), state["best_total"].copy()

        try:
            seeds = row_seeds(cfg.seed, keys, 1, "constraint")
            result = self.projector.project(
                targets, masks, z0, progress=on_step, on_checkpoint=on_snapshot, checkpoint_every=1, seeds=seeds
            )
            z, totals, cancelled = result.z, result.total, False
        except _Cancelled:
            if self._best is None:
                return [], True  # stopped before the first step ended: nothing to keep
            (z, totals), cancelled = self._best, True
        return self._keep(z, totals, targets, masks), cancelled

    def _keep(self, z, totals, targets, masks) -> list[str]:
        """The results into the session library: G(z), PSNR of the known pixels, the VAE encoding, a completion."""

        engine = self.engine
        generated = engine.backend.generate(z, self.projector.model)
        psnr = known_psnr(targets, generated, masks)
        vae = engine.encode_vae(np.stack([f.image for f in self.faces]))
        completing = self.mask is not None and bool((self.mask < 0.5).any())
        names = []
        for i, face in enumerate(self.faces):
            completion = None
            if completing:
                mixed = blend(self.blender, self.blend_params, targets[i], generated[i], masks[i], face.name)
                completion = from_unit(mixed)
            name = self.session.unique_name(face.name)
            self.session.add(
                Entry(
                    name=name,
                    z=np.asarray(z[i], np.float32),
                    target=face.image,
                    reconstruction=from_unit(generated[i]),
                    path=face.path,
                    loss=float(totals[i]),
                    psnr=float(psnr[i]),
                    vae_z=None if vae is None else vae[i],
                    completion=completion,
                )
            )
            names.append(name)
        return names


def _number(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is sent as null."""
    return float(value) if np.isfinite(value) else None
