"""facemath's test kit for plugin authors, as pytest offers `pytester` (public API, semver'd with facemath).

- `check_component(component, params=None, *, models=None, ...)`: every contract of the component's kind, static
  and run time, as a run checks it before its first step; raises the same `PluginError` (one line naming the
  component and its provider) a run would print.
- `registry(*plugins, installed=False)`: the registry a command builds with these `--plugin`s (components tagged
  with their providers, static contracts checked).
- `run(*args, plugins=())`: `facemath ARGS` in this process through the real error boundary: a `Result` with
  `code`, `stdout`, `stderr` and `error` (the error line).
- `tiny_models(folder)` and `tiny_faces(folder)`: every model facemath serves, untrained and tiny (32x32 images,
  z of 8), and synthetic faces with attributes; seconds, no network.
- `Kit(models, faces, workdir, plugins)`: short runs on them: `project`, `complete`, `math`, `interpolate`,
  `check`; a failed command raises `CommandFailed` with its error line.
- `backend_round_trip(backend, models)`: a backend plugin checked against the embedded backend, call by call.
- pytest fixtures (`facemath`, `facemath_models`, `facemath_faces`, ...): `pytest_plugins =
  ["facemath_core.testing.fixtures"]` in the plugin's conftest.py.

docs/plugins.md ("Testing your plugin") shows them at work; examples/facemath-plugin-template uses every one.
"""

from facemath_core.base.errors import PluginError
from facemath_core.testing.kit import (
    CommandFailed,
    Kit,
    Result,
    backend_round_trip,
    check_component,
    registry,
    run,
)
from facemath_core.testing.tiny import tiny_config, tiny_faces, tiny_models

__all__ = [
    "CommandFailed",
    "Kit",
    "PluginError",
    "Result",
    "backend_round_trip",
    "check_component",
    "registry",
    "run",
    "tiny_config",
    "tiny_faces",
    "tiny_models",
]
