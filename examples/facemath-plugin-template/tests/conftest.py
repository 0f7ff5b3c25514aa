"""facemath's test kit: tiny models built once (`facemath_models`), synthetic faces, and the `facemath` fixture
that runs short projections and expressions with this plugin loaded."""

pytest_plugins = ["facemath_core.testing.fixtures"]
