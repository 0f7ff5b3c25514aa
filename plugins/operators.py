"""Built-in operators of latent arithmetic, usable by name in `facemath math` expressions."""

from __future__ import annotations

import numpy as np

from facemath_core import Operator, hookimpl


def lerp(a, b, t):
    """Linear interpolation: (1 - t) a + t b."""
    return (1.0 - t) * np.asarray(a) + t * np.asarray(b)


def slerp(a, b, t):
    """Spherical interpolation (White 2016): follows the great circle, keeping norms typical of the prior."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    cos = np.clip(np.sum(a * b, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    linear = (1.0 - t) * a + t * b
    with np.errstate(invalid="ignore", divide="ignore"):
        spherical = np.sin((1.0 - t) * omega) / so * a + np.sin(t * omega) / so * b
    return np.where(so < 1e-6, linear, spherical).astype(np.float32)


def project_out(v, w):
    """v without its component along w: v - (v.w / w.w) w."""
    v, w = np.asarray(v, np.float64), np.asarray(w, np.float64)
    return (v - np.sum(v * w, axis=-1, keepdims=True) / max(float(np.sum(w * w)), 1e-12) * w).astype(np.float32)


@hookimpl
def facemath_operators():
    return [
        Operator("lerp", "Linear interpolation lerp(a, b, t).", lerp, arity=3),
        Operator("slerp", "Spherical interpolation slerp(a, b, t) (White 2016).", slerp, arity=3),
        Operator("project_out", "project_out(v, w): v minus its component along w.", project_out, arity=2),
    ]
