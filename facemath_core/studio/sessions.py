"""Each visitor's state: a session library of faces (GAN latent, VAE encoding, the image it came from), uploads in
a private temporary folder, and the projection job in flight. Sessions are found by a cookie; none is shared.

A session is made only for the page loaded from the studio itself or for the first request that changes something
(`routes/base.py` decides which); every other request without a known cookie reads a blank session that is never
stored. So requests any web page or health check can send never make sessions, and never push out a real one. When
`MAX_SESSIONS` are held, a new one replaces a session that holds nothing (no face, no upload, no projection), else
one idle for `IDLE_SECONDS` with no projection running; never one in use. If there is none, the visitor is told
to come back later (`StudioBusy`, a 503).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.base.errors import FacemathError

MAX_SESSIONS = 64
IDLE_SECONDS = 30 * 60  # a session untouched this long, with no projection running, may make room for a new one
MAX_UPLOADS = 32  # per session; the oldest upload goes first


class StudioBusy(FacemathError):
    """No room for a new session: every held one is in use."""


@dataclass
class Entry:
    """One face of the session library."""

    name: str
    z: np.ndarray  # (D,) GAN latent
    target: np.ndarray  # (S, S, 3) uint8: the image it was projected from
    reconstruction: np.ndarray  # (S, S, 3) uint8: G(z)
    path: str = ""  # the example face file, so a downloaded latents.npz finds its attribute file
    loss: float = float("nan")
    psnr: float = float("nan")
    vae_z: np.ndarray | None = None  # (D_vae,) the VAE encoder's posterior mean of the same image
    vaegan_z: np.ndarray | None = None  # (D_vaegan,) the VAE-GAN encoder's, likewise
    completion: np.ndarray | None = None  # (S, S, 3) uint8 when projected with a brush mask


@dataclass
class Session:
    id: str
    folder: Path  # the only place this session writes (uploads)
    library: OrderedDict[str, Entry] = field(default_factory=OrderedDict)
    uploads: OrderedDict[str, Path] = field(default_factory=OrderedDict)
    job: object | None = None  # jobs.ProjectionThread in flight or last finished
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: float = field(default_factory=time.monotonic)
    # The attribute vectors of the library they were fitted on: a slider move reuses them until the library changes.
    sliders: tuple[list, tuple] | None = None

    def entries(self) -> list[Entry]:
        """The library now, as a list: a projection may add faces while a request reads it."""
        with self.lock:
            return list(self.library.values())

    def entry(self, name: str) -> Entry:
        with self.lock:
            if name in self.library:
                return self.library[name]
            known = ", ".join(self.library) or "none yet: project a face first"
        raise FacemathError(f"no face named {name!r} in the library (it has: {known})")

    def add(self, entry: Entry) -> None:
        with self.lock:
            self.library[entry.name] = entry

    def unique_name(self, name: str) -> str:
        """A library name not yet taken: a face projected twice keeps both results."""
        with self.lock:
            taken = set(self.library)
        if name not in taken:
            return name
        stem, dot, suffix = name.rpartition(".")
        stem, suffix = (stem, f".{suffix}") if dot else (name, "")
        n = 2
        while f"{stem}-{n}{suffix}" in taken:
            n += 1
        return f"{stem}-{n}{suffix}"

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.finished

    @property
    def empty(self) -> bool:
        """Nothing to lose: no face, no upload, no projection running."""
        with self.lock:
            return not self.library and not self.uploads and not self.running

    def upload_path(self, name: str) -> Path:
        """Where an upload called `name` is stored: a fresh file in the session folder (the name only labels it)."""
        with self.lock:
            replaced = self.uploads.pop(name, None)
            if replaced is not None:
                replaced.unlink(missing_ok=True)
            while len(self.uploads) >= MAX_UPLOADS:
                _, old = self.uploads.popitem(last=False)
                old.unlink(missing_ok=True)
            path = self.folder / f"upload-{len(self.uploads)}-{secrets.token_hex(4)}"
            self.uploads[name] = path
        return path


class SessionStore:
    """Sessions by id, all under one temporary folder that `close` removes."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="facemath-studio-", dir=root))
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, session_id: str | None) -> Session | None:
        """The session of this id (now the most recently used), or None."""
        with self._lock:
            session = self._sessions.get(session_id) if session_id else None
            if session is not None:
                self._sessions.move_to_end(session_id)
                session.seen = time.monotonic()
            return session

    def create(self) -> Session:
        """A new session, making room if MAX_SESSIONS are held (see the module's docstring), or StudioBusy."""
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                victim = self._replaceable()
                if victim is None:
                    raise StudioBusy(
                        f"the studio holds {MAX_SESSIONS} sessions in use; try again when one has been idle for "
                        f"{IDLE_SECONDS // 60} minutes"
                    )
                old = self._sessions.pop(victim.id)
                _cancel(old)
                shutil.rmtree(old.folder, ignore_errors=True)
            new_id = secrets.token_urlsafe(16)
            folder = self.root / new_id
            folder.mkdir(mode=0o700)
            session = Session(new_id, folder)
            self._sessions[new_id] = session
            return session

    def discard(self, session: Session) -> None:
        """Forget a session made for a request that then failed: a refused request leaves nothing behind."""
        with self._lock:
            self._sessions.pop(session.id, None)
        _cancel(session)
        shutil.rmtree(session.folder, ignore_errors=True)

    def blank(self) -> Session:
        """An empty session that is not stored, for a request without a session of its own: it reads an empty
        library and has nowhere to write."""
        return Session("", self.root / "none")

    def _replaceable(self) -> Session | None:
        """The session a new one may replace: the least recently used that holds nothing, else the least recently
        used idle for IDLE_SECONDS with no projection running."""
        sessions = list(self._sessions.values())  # least recently used first
        idle_since = time.monotonic() - IDLE_SECONDS
        return next((s for s in sessions if s.empty), None) or next(
            (s for s in sessions if s.seen <= idle_since and not s.running), None
        )

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                _cancel(session)
            self._sessions.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _cancel(session: Session) -> None:
    job = session.job
    if job is not None:
        job.cancel()
