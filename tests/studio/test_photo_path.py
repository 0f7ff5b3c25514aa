"""The studio's photo path (issue 26): an uploaded photo's faces are found and aligned and join the uploads; once
projected, the attribute sliders move them inside the photo, pasted back where they were found. In-process on
the tiny models, with scikit-image's astronaut (one face) and cat (none)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from .test_studio_api import IMAGE, new_client, pixels, read_events

STEPS = 12


def png(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine(tiny_export, synth_faces):
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends import open_backend
    from facemath_core.studio.engine import Engine

    return Engine(open_backend(str(tiny_export)), load_registry(builtins_only=True), synth_faces)


@pytest.fixture(scope="module")
def app(engine):
    from facemath_core.studio.app import create_app

    app = create_app(engine)
    yield app
    app.state.store.close()


def test_a_photo_is_aligned_projected_and_edited_in_place(app, engine):
    client = new_client(app)
    answer = client.post("/api/photo?name=astronaut.png", content=png(data.astronaut()), headers=IMAGE)
    assert answer.status_code == 200, answer.text
    (face,) = answer.json()["faces"]
    assert face["face"] == "upload:astronaut_1.png" and pixels(face["image"]).shape == (32, 32, 3)
    # before its face is projected, the photo cannot be edited: one line saying what to do
    early = client.post("/api/photo-edit", json={"photo": "astronaut.png", "amounts": {}})
    assert early.status_code == 400
    examples = [f"example:{name}" for name in list(engine.face_files)[:6]]
    started = client.post("/api/project", json={"faces": [*examples, face["face"]], "steps": STEPS})
    assert started.status_code == 200, started.text
    read_events(client)
    sliders = client.get("/api/sliders").json()["attributes"]
    still = client.post("/api/photo-edit", json={"photo": "astronaut.png", "amounts": {}})
    moved = client.post("/api/photo-edit", json={"photo": "astronaut.png", "amounts": {sliders[0]: 2.5}})
    assert still.status_code == 200 and moved.status_code == 200, (still.text, moved.text)
    photo, unmoved, edited = (
        data.astronaut().astype(np.int16),
        pixels(still.json()["image"]),
        pixels(moved.json()["image"]),
    )
    assert edited.shape == photo.shape
    pasted = (unmoved != photo).any(axis=2)
    # the face is pasted into her face's place only: inside her detected box, grown by half
    record = json.loads(next(app.state.store.root.rglob("photos.json")).read_text())["astronaut.png"]["faces"][0]
    x0, y0, x1, y1 = record["box"]
    grow = 0.5 * max(x1 - x0, y1 - y0)
    ys, xs = np.nonzero(pasted)
    assert len(ys) > 100
    assert xs.min() >= x0 - grow and xs.max() <= x1 + grow and ys.min() >= y0 - grow and ys.max() <= y1 + grow
    # the slider changes the pasted face, and nothing else
    assert (edited != unmoved).any()
    assert np.array_equal(edited[~pasted], photo[~pasted])


def test_a_photo_without_a_face_is_one_error(app):
    client = new_client(app)
    answer = client.post("/api/photo?name=chelsea.png", content=png(data.chelsea()), headers=IMAGE)
    assert answer.status_code == 400
    assert answer.json() == {"error": "no face found in chelsea.png (detector mtcnn, min face 20 px)"}


def test_editing_a_photo_never_uploaded_is_one_error(app):
    client = new_client(app)
    client.post("/api/photo?name=astronaut.png", content=png(data.astronaut()), headers=IMAGE)
    answer = client.post("/api/photo-edit", json={"photo": "someone.png", "amounts": {}})
    assert answer.status_code == 400 and "no photo named 'someone.png'" in answer.json()["error"]
    bad = client.post("/api/photo-edit", json={"photo": "astronaut.png", "amounts": [1]})
    assert bad.status_code == 400 and "amounts" in bad.json()["error"]
