"""pytest fixtures for a plugin's own tests. In the plugin's `conftest.py`:

    pytest_plugins = ["facemath_core.testing.fixtures"]

- `facemath_models` (session): a folder of tiny models (`tiny_models`), built once; with pytest's cache
  (`-p cacheprovider`, on by default) built once per facemath version and kept between test runs.
- `facemath_faces` (session): eight synthetic faces with an attribute file (`tiny_faces`).
- `facemath_latents` (session): a latents.npz of those faces, for `math`, `analogy` and `interpolate`.
- `facemath_plugins`: what every command loads with `--plugin`; empty by default (an installed plugin is found
  through its entry point). Override it in `conftest.py` to test a plugin that is not installed.
- `facemath`: a `Kit` over all of the above, writing into the test's `tmp_path`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facemath_core.base.version import __version__
from facemath_core.testing.kit import Kit, run
from facemath_core.testing.tiny import tiny_faces, tiny_models


@pytest.fixture(scope="session")
def facemath_models(request, tmp_path_factory) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return tiny_models(cache.mkdir(f"facemath-tiny-models-{__version__}") / "models")
    return tiny_models(tmp_path_factory.mktemp("facemath-models") / "models")


@pytest.fixture(scope="session")
def facemath_faces(tmp_path_factory) -> Path:
    return tiny_faces(tmp_path_factory.mktemp("facemath-faces") / "faces")


@pytest.fixture(scope="session")
def facemath_latents(facemath_models, facemath_faces, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("facemath-latents") / "faces"
    images = sorted((facemath_faces / "img_align_celeba").glob("*.png"))
    result = run("project", *images, "--models", facemath_models, "--steps", 1, "-o", out)
    assert result.code == 0, result.stderr
    return out / "latents.npz"


@pytest.fixture
def facemath_plugins() -> list:
    return []


@pytest.fixture
def facemath(request, facemath_models, facemath_faces, facemath_plugins, tmp_path) -> Kit:
    return Kit(
        facemath_models,
        facemath_faces,
        tmp_path,
        facemath_plugins,
        latents=lambda: request.getfixturevalue("facemath_latents"),
    )
