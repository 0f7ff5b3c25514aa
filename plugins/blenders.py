"""Built-in blenders: paste the generated fill into the known image."""

from __future__ import annotations

import numpy as np

from facemath_core import Blender, Param, hookimpl


def overlay(target, generated, mask):
    """Known pixels from the image, the rest from G(z)."""
    m = mask[..., None]
    return m * target + (1.0 - m) * generated


def poisson(target, generated, mask):
    """Gradient-domain blend (Yeh et al. 2017, after Perez et al. 2003): the missing pixels take G(z)'s
    gradients with the known pixels as boundary values; known pixels are kept exactly.

    Solves the discrete Poisson equation over the missing pixels with a sparse direct solver. Neighbours outside
    the image are left out (a Neumann border).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    known = mask >= 0.5
    unknown = ~known
    count = int(unknown.sum())
    if count == 0:
        return target.copy()
    if not known.any():
        return generated.copy()
    h, w = mask.shape
    index = -np.ones((h, w), np.int64)
    index[unknown] = np.arange(count)
    ys, xs = np.nonzero(unknown)
    rows, cols, vals = [], [], []
    degree = np.zeros(count)
    rhs = np.zeros((count, target.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        i = np.nonzero(inside)[0]
        degree[i] += 1
        # Guidance: G(z)'s gradient towards this neighbour.
        rhs[i] += generated[ys[i], xs[i]] - generated[ny[i], nx[i]]
        neighbour_unknown = unknown[ny[i], nx[i]]
        u = i[neighbour_unknown]
        rows.extend(u)
        cols.extend(index[ny[u], nx[u]])
        vals.extend([-1.0] * len(u))
        k = i[~neighbour_unknown]
        rhs[k] += target[ny[k], nx[k]]  # Dirichlet boundary: the known pixel's value
    rows.extend(range(count))
    cols.extend(range(count))
    vals.extend(degree)
    system = sp.csc_matrix((vals, (rows, cols)), shape=(count, count))
    solution = splu(system).solve(rhs)
    out = target.copy()
    out[unknown] = solution
    return np.clip(out, -1.0, 1.0).astype(target.dtype)


def feather(target, generated, mask, radius=3.0):
    """Overlay with the hole's edge feathered inwards: G(z)'s weight rises from 0 at the hole's border to 1 at
    `radius` pixels inside it (a Euclidean distance transform), so no seam shows and every known pixel (mask >= 0.5)
    stays exactly the image's."""
    from scipy.ndimage import distance_transform_edt

    hole = mask < 0.5
    if radius <= 0 or not hole.any():
        return overlay(target, generated, mask)
    inside = distance_transform_edt(hole)  # distance of each hole pixel to the nearest known pixel
    weight = np.where(hole, np.clip(inside / float(radius), 0.0, 1.0) * (1.0 - mask), 0.0)[..., None]
    return ((1.0 - weight) * target + weight * generated).astype(target.dtype)


@hookimpl
def facemath_blenders():
    return [
        Blender("overlay", "Known pixels from the image, the hole from G(z).", overlay),
        Blender(
            "feather",
            "Overlay whose hole edge fades in over a few pixels; known pixels kept exactly.",
            feather,
            defaults={"radius": Param(3.0, ge=0.0, help="pixels over which G(z) fades in from the hole's edge")},
        ),
        Blender("poisson", "Gradient-domain (Poisson) blend, exact on known pixels (Yeh 2017).", poisson),
    ]
