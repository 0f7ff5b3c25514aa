"""Fuzzing the error contract (docs/errors.md) with hypothesis: random numbers and expressions given to `project`,
`math` and `data synth` either succeed or fail as one `error:` line with exit 1 or 2, no traceback, no internal
error, and nothing at the output path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..support import Result

NUMBERS = st.sampled_from(["0", "-1", "1", "2", "nan", "inf", "-inf", "1e308", "abc", "", "0.5", "3"])
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def assert_contract(result: Result, out: Path) -> None:
    """Success, or one error line with exit 1/2 and nothing at the output path."""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.code == 0:
        return
    assert result.code in (1, 2), result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1, result.stderr
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["--steps", "--lr", "--restarts", "--batch-size", "--patience", "--seed"]), NUMBERS),
        max_size=3,
    ),
    st.sampled_from([[], ["--loss-plugin", "contextual=nan"], ["--param", "adam.beta_2=2"], ["--init", "x"]]),
)
@pytest.mark.slow
def test_fuzz_project_options(cli, generated_faces, tiny_export, tmp_path_factory, options, extra):
    out = tmp_path_factory.mktemp("fuzz") / "out"
    flat = [x for pair in options for x in pair]
    if not any(o == "--steps" for o, _ in options):
        flat += ["--steps", "2"]  # every valid --steps in NUMBERS is small too
    assert_contract(cli("project", generated_faces, "--models", tiny_export, "--out", out, *flat, *extra), out)


@FUZZ
@given(
    st.text(alphabet="f0123+-*/()&|~,. 'mean", max_size=40),
    st.sampled_from([[], ["--jitter", "nan"], ["--exemplars", "-1"], ["--seed", "-2"], ["--jitter", "1e308"]]),
)
@pytest.mark.slow
def test_fuzz_math(cli, good_latents, tiny_export, tmp_path_factory, expression, extra):
    out = tmp_path_factory.mktemp("fuzz") / "m"
    assert_contract(
        cli("math", expression, "--latents", good_latents, "--models", tiny_export, "--out", out, *extra), out
    )


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["--count", "--size", "--seed", "--held-out-percent"]), NUMBERS),
        max_size=3,
    ),
    st.sampled_from([[], ["--freq", "Smiling=nan"], ["--freq", "Smiling=2"], ["--correlate", "Smiling:Male=1"]]),
)
def test_fuzz_synth(cli, tmp_path_factory, options, extra):
    out = tmp_path_factory.mktemp("fuzz") / "s"
    flat = [x for pair in options for x in pair]
    # Keep successful renders small: at most 4 faces of 16..64 pixels.
    flat += ["--count", "4"] if not any(o == "--count" for o, _ in options) else []
    assert_contract(cli("data", "synth", "--out", out, *flat, *extra), out)
