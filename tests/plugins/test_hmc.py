"""The built-in HMC sampler (facemath_plugins.samplers) on distributions with known answers, through the same
function `facemath complete --sampler hmc` calls: a 2-D correlated Gaussian (mean and covariance within a Monte
Carlo error derived from the effective sample size), the acceptance rate against eps, the leapfrog's O(eps^2)
energy error, and reflection at the box (a uniform target stays uniform; a tilted one has its analytic mean)."""

from __future__ import annotations

import numpy as np
import pytest
from facemath_plugins import samplers
from facemath_plugins.samplers import hamiltonian, hmc, leapfrog

from facemath_core import PluginError, Sampler
from facemath_core.host.contracts import check_component
from facemath_core.host.manager import load_registry
from facemath_core.testing import check_component as kit_check

SIGMA = np.array([[1.0, 0.8], [0.8, 1.0]])  # eigenvalues 1.8 and 0.2: the chain must cross a narrow valley
PRECISION = np.linalg.inv(SIGMA)


def gaussian(z):
    """U(z) = z' Sigma^-1 z / 2 and its gradient: exp(-U) is N(0, Sigma)."""
    z = np.asarray(z, np.float64)
    g = z @ PRECISION
    return 0.5 * np.sum(z * g, axis=1), g


def integrated_time(series: np.ndarray) -> float:
    """The integrated autocorrelation time of a statistic, from chains (C, T): the autocorrelation averaged over
    chains, summed by Geyer's initial positive sequence (pairs rho_2m + rho_2m+1 while positive)."""
    x = series - series.mean()
    c, t = x.shape
    variance = np.mean(x * x)
    rho = [np.mean(x[:, : t - k] * x[:, k:]) / variance for k in range(t // 2)]
    tau = -1.0  # 1 + 2 sum_{k>=1} rho_k = -1 + 2 sum_{m} (rho_2m + rho_2m+1)
    for m in range(len(rho) // 2):
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0:
            break
        tau += 2 * pair
    return max(tau, 1.0 / t)


def check_expectation(series: np.ndarray, truth: float, variance: float, sigmas: float = 4.0) -> tuple[float, float]:
    """The chains' average of a statistic against its exact expectation, within `sigmas` Monte Carlo standard
    errors sqrt(variance / ESS), ESS = draws / integrated autocorrelation time; returns (error, standard error)."""
    ess = series.size / integrated_time(series)
    standard_error = np.sqrt(variance / ess)
    error = abs(series.mean() - truth)
    assert error < sigmas * standard_error, (series.mean(), truth, standard_error, ess)
    return error, standard_error


def test_hmc_samples_a_correlated_gaussian():
    """64 chains of 400 kept draws each: every mean and second moment within 4 standard errors of its exact value,
    the standard errors themselves small (the test can fail), and the acceptance rate what eps 0.25 gives."""
    rng = np.random.default_rng(31)
    z0 = rng.normal(size=(64, 2)) * 2.0  # overdispersed starts: burn-in must forget them
    z, acceptance = hmc(gaussian, z0, None, rng, 400, beta=1.0, eps=0.25, L=8, burn_in=50, thin=1)
    assert z.shape == (64, 400, 2) and acceptance.shape == (64,)
    a, b = z[..., 0], z[..., 1]
    s11, s22, s12 = SIGMA[0, 0], SIGMA[1, 1], SIGMA[0, 1]
    # Exact variances of each statistic under N(0, Sigma) (Isserlis): var z_i^2 = 2 s_ii^2, var z1 z2 = s11 s22 + s12^2.
    checks = [
        (a, 0.0, s11),
        (b, 0.0, s22),
        (a * a, s11, 2 * s11**2),
        (b * b, s22, 2 * s22**2),
        (a * b, s12, s11 * s22 + s12**2),
    ]
    for series, truth, variance in checks:
        _, standard_error = check_expectation(series, truth, variance)
        assert standard_error < 0.04  # at least ~1000 effective draws: 4 SE is a sharp bound
    assert 0.85 < acceptance.mean() < 1.0


def acceptance_rate(eps: float, steps: int) -> float:
    rng = np.random.default_rng(7)
    z0 = rng.multivariate_normal(np.zeros(2), SIGMA, size=200)  # start in the target: no burn-in needed
    _, acceptance = hmc(gaussian, z0, None, rng, 20, beta=1.0, eps=eps, L=steps, burn_in=0)
    return float(acceptance.mean())


def test_acceptance_falls_as_eps_grows():
    """Same chains, trajectories of about the same length 1.2 (L = 1.2 / eps): the acceptance rate falls
    monotonically with eps, from ~1 (energy error O(eps^2)). Past the leapfrog's stability limit
    eps = 2 / sqrt(5) = 0.894 (5 is the largest eigenvalue of Sigma^-1) it collapses: at eps 0.95 the stiff mode's
    amplitude doubles every step (a root of x + 1/x = 2 - 0.95^2 x 5 is -2), so after 10 steps no trajectory
    ends near its starting energy."""
    rates = [acceptance_rate(eps, round(1.2 / eps)) for eps in (0.05, 0.2, 0.4, 0.6, 0.8)]
    assert all(x > y for x, y in zip(rates, rates[1:], strict=False)), rates
    assert rates[0] > 0.99, rates
    assert acceptance_rate(0.95, 10) < 0.01


def test_leapfrog_energy_error_shrinks_as_eps_squared():
    """One trajectory of fixed length 1.6 from a fixed (z, p): the energy error |H_end - H_start| divided by the
    error at half the step size tends to 4, the leapfrog's second order; the ratios converge monotonically."""
    z0 = np.array([[1.2, -0.3]])
    p0 = np.array([[0.4, 1.1]])
    u0, g0 = gaussian(z0)
    errors = []
    for k in range(6):
        eps = 0.2 / 2**k
        z, p, u, _ = leapfrog(gaussian, z0, p0, g0, 1.0, eps, 8 * 2**k, None)
        errors.append(abs(float(hamiltonian(u, p, 1.0)[0] - hamiltonian(u0, p0, 1.0)[0])))
    ratios = [errors[i] / errors[i + 1] for i in range(len(errors) - 1)]
    distances = [abs(r - 4) for r in ratios]
    assert all(x > y for x, y in zip(distances, distances[1:], strict=False)), ratios
    assert distances[-1] < 0.01, ratios


def test_reflection_keeps_a_uniform_target_uniform():
    """U = 0 on the box [-1, 1]^2: exp(-U) is uniform there. Every sample is inside, every proposal is accepted
    (reflection keeps |p|), and each tenth of [-1, 1] holds a tenth of the samples within 4 standard errors (ESS
    of the bin's indicator). The same test with clipping (Amos 2016) instead piles the samples on the walls."""

    def flat(z):
        return np.zeros(len(z)), np.zeros_like(z)

    def run():
        rng = np.random.default_rng(3)
        z0 = rng.uniform(-1, 1, (64, 2))
        return hmc(flat, z0, 1.0, rng, 300, beta=1.0, eps=0.3, L=5, burn_in=10)

    z, acceptance = run()
    assert np.abs(z).max() <= 1.0 and (acceptance == 1).all()
    edges = np.linspace(-1, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = ((z[..., 0] >= lo) & (z[..., 0] < hi)).astype(np.float64)
        check_expectation(inside, 0.1, 0.1 * 0.9)
    check_expectation(z[..., 1] ** 2, 1 / 3, 1 / 5 - 1 / 9)  # E z^2 = 1/3, E z^4 = 1/5 on U(-1, 1)

    def clip(z, p, bound):
        return np.clip(z, -bound, bound), p

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(samplers, "reflect", clip)
        clipped, _ = run()
    at_wall = np.mean(np.abs(clipped) == 1.0)
    assert at_wall > 0.05  # a measure-zero set holds a visible share of the samples: not uniform


def test_reflection_with_a_force_towards_the_wall():
    """U(z) = c * z_1 on the box: exp(-U) is a truncated exponential in z_1, mean 1/c - coth(c), and uniform in
    z_2. The gradient pushes every trajectory into the wall at -1, where reflection and the Metropolis test must
    still give the exact density."""
    c = 2.0

    def tilted(z):
        gradient = np.zeros_like(z)
        gradient[:, 0] = c
        return c * z[:, 0], gradient

    rng = np.random.default_rng(5)
    z, acceptance = hmc(tilted, rng.uniform(-1, 1, (64, 2)), 1.0, rng, 300, beta=1.0, eps=0.2, L=6, burn_in=20)
    # Reflection mid-drift puts the kicks off time, so some energy error (and rejection) is expected here:
    # the Metropolis test is what makes the density exact.
    assert np.abs(z).max() <= 1.0 and 0.5 < acceptance.mean() < 1.0
    mean = 1 / c - 1 / np.tanh(c)
    second = 1 - 2 * mean / c  # E z^2 for density proportional to exp(-c z) on [-1, 1] (by parts)
    check_expectation(z[..., 0], mean, second - mean**2)


def test_the_built_in_sampler_passes_its_contract_and_keeps_amos_defaults():
    registry = load_registry(builtins_only=True)
    component = registry.get("sampler", "hmc")
    check_component(component)
    assert (
        {k: component.defaults[k] for k in ("beta", "eps", "L")}
        == samplers.AMOS_2016
        == {
            "beta": 0.2,
            "eps": 0.001,
            "L": 100,
        }
    )


@pytest.mark.parametrize(
    ("result", "fragment"),
    [
        (lambda z0, samples: (np.zeros((len(z0), samples + 1, z0.shape[1])), np.ones(len(z0))), "expected (2, 2, 8)"),
        (lambda z0, samples: (np.full((len(z0), samples, z0.shape[1]), 1.5), np.ones(len(z0))), "outside the box"),
        (lambda z0, samples: (np.zeros((len(z0), samples, z0.shape[1])), np.full(len(z0), 2.0)), "outside [0, 1]"),
        (lambda z0, samples: "nothing", "expected (z, acceptance)"),
    ],
)
def test_a_broken_sampler_is_one_line_naming_it(result, fragment):
    """The kit's `check_component` (what a run and `plugins --check` do) refuses a sampler whose samples have the
    wrong shape, leave the box or whose acceptance rates are not rates."""

    def broken(energy, z0, bound, rng, samples):
        return result(z0, samples)

    with pytest.raises(PluginError) as caught:
        kit_check(Sampler("broken", "A broken sampler.", broken))
    assert "sampler 'broken'" in str(caught.value) and fragment in str(caught.value)
    assert "\n" not in str(caught.value)
