"""Built-in samplers of z: Hamiltonian Monte Carlo on the completion's loss (Amos 2016, `--approach hmc`).

The sampler is a pure function of (energy, z0, bound, rng, params): it sees the projection only through `energy`,
z -> (U(z), dU/dz) per image, so the same code samples a face's posterior and, in the tests, a known distribution.
"""

from __future__ import annotations

import numpy as np

from facemath_core import Param, Sampler, hookimpl


def reflect(z: np.ndarray, p: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold positions that left the box [-bound, bound] back in, mirror-wise, and reverse those momentum
    components: the free motion of a particle between elastic walls. As many folds as needed (a drift longer than
    the box bounces more than once); each fold maps the drift step one-to-one onto itself with unit Jacobian and is
    its own inverse under momentum reversal, so the leapfrog step stays volume preserving and reversible and the
    Metropolis test stays exact (Neal 2011, "MCMC using Hamiltonian dynamics", section 5.5.1.5)."""
    z, p = z.copy(), p.copy()
    for _ in range(64):  # a fold shortens the overshoot by 2*bound: 64 is far more than any sane eps*|p| needs
        above, below = z > bound, z < -bound
        if not (above.any() or below.any()):
            break
        z = np.where(above, 2 * bound - z, np.where(below, -2 * bound - z, z))
        p = np.where(above | below, -p, p)
    return np.clip(z, -bound, bound), p  # the clip only removes rounding below one ulp


def leapfrog(energy, z, p, gradient, beta: float, eps: float, steps: int, bound: float | None):
    """`steps` leapfrog steps of size `eps` for H(z, p) = beta * U(z) + |p|^2 / 2 from (z, p), whose dU/dz is
    `gradient`: half a kick, then drift (reflected at the box), kick, ..., drift, half a kick. Returns the end
    point (z, p) with U and dU/dz there. Rows whose energy stops being finite keep going with NaN, and the
    Metropolis test rejects them."""
    p = p - 0.5 * eps * beta * gradient
    for step in range(steps):
        z = z + eps * p
        if bound is not None:
            z, p = reflect(z, p, bound)
        u, gradient = energy(z)
        u, gradient = np.asarray(u, np.float64), np.asarray(gradient, np.float64)
        if step < steps - 1:
            p = p - eps * beta * gradient
    p = p - 0.5 * eps * beta * gradient
    return z, p, u, gradient


def hamiltonian(u: np.ndarray, p: np.ndarray, beta: float) -> np.ndarray:
    """H = beta * U(z) + |p|^2 / 2 per row (the negative log density of (z, p) up to a constant)."""
    return beta * u + 0.5 * np.sum(p * p, axis=1)


def hmc(energy, z0, bound, rng, samples, beta=0.2, eps=0.001, L=100, burn_in=10, thin=1):  # noqa: N803 (Amos' name)
    """Hamiltonian Monte Carlo of exp(-beta * U(z)) on the box, one chain per row of z0, from z0.

    Each proposal draws p ~ N(0, I), runs `L` leapfrog steps of size `eps` and accepts the end point with
    probability min(1, exp(H_start - H_end)), per row; otherwise the chain stays. The first `burn_in` proposals
    are dropped, then every `thin`-th state is kept until there are `samples`. The acceptance rate counts the
    kept part only (burn-in excluded).

    Amos' dcgan-completion clips z to the box after each drift; a clip is not one-to-one (every point past the
    wall lands on it), so the chain would not leave the posterior invariant. Reflection keeps it exact (`reflect`).
    The tanh reparametrisation would need the log-Jacobian of z = tanh(v) added to the energy and changes the
    metric of the moves near the walls; reflection keeps U exactly the projection's loss in z.
    """
    z = np.array(z0, np.float64)
    if z.ndim != 2:
        raise ValueError(f"z0 must be (N, D), got shape {z.shape}")
    if bound is not None and bound <= 0:
        raise ValueError(f"bound {bound}: must be > 0 (or None for no box)")
    if bound is not None:
        z = np.clip(z, -bound, bound)
    n, d = z.shape
    u, gradient = energy(z)
    u, gradient = np.asarray(u, np.float64), np.asarray(gradient, np.float64)
    kept = np.empty((n, samples, d), np.float64)
    accepted = np.zeros(n, np.int64)
    proposals = 0
    for index in range(burn_in + samples * thin):
        p = rng.standard_normal((n, d))
        start = hamiltonian(u, p, beta)
        with np.errstate(all="ignore"):  # a diverging trajectory is rejected below, not an error
            z_new, p_new, u_new, g_new = leapfrog(energy, z, p, gradient, beta, eps, L, bound)
            end = hamiltonian(u_new, p_new, beta)
            log_ratio = start - end
        finite = np.isfinite(log_ratio) & np.isfinite(z_new).all(axis=1) & np.isfinite(g_new).all(axis=1)
        accept = finite & (np.log(rng.uniform(size=n)) < np.where(finite, log_ratio, -np.inf))
        z = np.where(accept[:, None], z_new, z)
        u = np.where(accept, u_new, u)
        gradient = np.where(accept[:, None], g_new, gradient)
        after = index - burn_in
        if after >= 0:
            accepted += accept
            proposals += 1
            if (after + 1) % thin == 0:
                kept[:, (after + 1) // thin - 1] = z
    acceptance = accepted / proposals if proposals else np.ones(n)
    return kept, acceptance


# Amos' dcgan-completion, `--approach hmc`: `--hmcBeta 0.2 --hmcEps 0.001 --hmcL 100` (complete.py's defaults).
AMOS_2016 = {"beta": 0.2, "eps": 0.001, "L": 100}


@hookimpl
def facemath_samplers():
    return [
        Sampler(
            "hmc",
            "Hamiltonian Monte Carlo on beta x the completion loss, reflected at the box (Amos 2016's --approach hmc).",
            hmc,
            {
                "beta": Param(AMOS_2016["beta"], gt=0, help="Inverse temperature: the energy is beta x the loss."),
                "eps": Param(AMOS_2016["eps"], gt=0, help="Leapfrog step size."),
                "L": Param(AMOS_2016["L"], ge=1, help="Leapfrog steps per proposal."),
                "burn_in": Param(10, ge=0, help="Proposals dropped before the first kept sample."),
                "thin": Param(1, ge=1, help="Keep every thin-th state after the burn-in."),
            },
        )
    ]
