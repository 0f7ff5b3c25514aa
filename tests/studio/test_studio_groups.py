"""The studio's expression route (/api/math) on groups of library faces, against sets computed from the example
folder's label file with Python set operations (tests/latent/test_group_sets.read_label_file): every operator of
the group language (&, |, ~, ~~, parentheses, nesting). The studio never flags faces (each library face was
projected on request and is shown with its reconstruction), so there is no flagged case here; the flagged cases
of the same evaluator are in tests/latent/test_group_sets*.py."""

from __future__ import annotations

import json

import pytest

from ..latent.test_group_sets import read_label_file, with_attribute

pytestmark = pytest.mark.slow  # a projection of 24 faces through the studio first


@pytest.fixture(scope="module")
def library(tiny_export, synth_faces):
    """A session whose library holds 24 example faces (2 projection steps each), the labels and the client."""
    from starlette.testclient import TestClient

    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends import open_backend
    from facemath_core.studio.app import create_app
    from facemath_core.studio.engine import Engine

    engine = Engine(open_backend(str(tiny_export)), load_registry(builtins_only=True), synth_faces)
    app = create_app(engine)
    client = TestClient(app, base_url="http://127.0.0.1:8765")  # the address create_app answers to
    faces = sorted(engine.face_files)[:24]
    answer = client.post("/api/project", json={"faces": [f"example:{f}" for f in faces], "steps": 2})
    assert answer.status_code == 200, answer.text
    with client.stream("GET", "/api/project/events") as stream:
        events = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert sorted(events[-1]["names"]) == faces
    _, labels = read_label_file(synth_faces / "list_attr_celeba.txt")
    yield client, {name: labels[name] for name in faces}
    app.state.store.close()


def expected_groups(faces: dict[str, set[str]]) -> dict[str, set[str]]:
    every = set(faces)
    s, m, e, b = (with_attribute(faces, a) for a in ("Smiling", "Male", "Eyeglasses", "Bangs"))
    return {
        "Smiling & ~Male": s - m,
        "~Smiling & ~Male": every - s - m,
        "~(Smiling | Eyeglasses)": every - (s | e),
        "Male | ~Bangs & Eyeglasses": m | ((every - b) & e),
        "(Male | ~Bangs) & Eyeglasses": (m | (every - b)) & e,
        "~~Smiling & ~(Male & Bangs)": s & (every - (m & b)),
    }


def test_math_terms_are_drawn_from_the_groups_the_labels_define(library):
    client, faces = library
    groups = {text: members for text, members in expected_groups(faces).items() if members}
    assert len(groups) >= 5  # the 24 faces leave almost every group non-empty
    expression = " + ".join(f"mean({text})" for text in groups)
    answer = client.post("/api/math", json={"expression": expression})
    assert answer.status_code == 200, answer.text
    terms = answer.json()["terms"]
    assert len(terms) == len(groups) and answer.json()["notes"] == []
    for term, members in zip(terms, groups.values(), strict=True):
        drawn = set(term["faces"])
        # The studio draws 3 exemplars per group, as `facemath math` does by default.
        assert drawn <= members and len(drawn) == min(3, len(members)), (term["text"], drawn, members)


def test_an_empty_group_is_one_line_naming_it(library):
    client, faces = library
    every = set(faces)
    answer = client.post("/api/math", json={"expression": "mean(Smiling & ~(Smiling | Male))"})
    assert not with_attribute(faces, "Smiling") & (every - with_attribute(faces, "Smiling"))  # empty by the sets
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert message == (
        "expression column 6: the group Smiling & ~(Smiling | Male) is empty: no face has these attributes"
    )
