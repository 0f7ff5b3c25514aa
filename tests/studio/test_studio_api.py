"""The studio's HTTP API in-process (starlette's TestClient), on the tiny models of conftest.py: every endpoint with
good and bad input. Results are checked against the library called directly (the CLI's own path: ProjectionRun,
the backend's generator, numpy arithmetic), and bad input must come back as one JSON line, never a traceback."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from ..support import run_facemath

STEPS = 12


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
    app.state.store.close()  # what the server's shutdown does: the sessions' temporary folder goes
    assert not app.state.store.root.exists()


STUDIO = "http://127.0.0.1:8765"  # the address create_app answers to by default (access.Access())
IMAGE = {"Content-Type": "application/octet-stream"}  # what the page sends an upload as
JSON = {"Content-Type": "application/json"}


def new_client(app):
    from starlette.testclient import TestClient

    return TestClient(app, base_url=STUDIO)


@pytest.fixture(scope="module")
def projected(app, engine):
    """One session whose library holds four example faces projected for STEPS steps, and its SSE events."""
    client = new_client(app)
    faces = list(engine.face_files)[:4]
    answer = client.post("/api/project", json={"faces": [f"example:{f}" for f in faces], "steps": STEPS})
    assert answer.status_code == 200, answer.text
    return client, faces, read_events(client)


def read_events(client) -> list[dict]:
    events = []
    with client.stream("GET", "/api/project/events") as stream:
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append({"event": kind, **json.loads(line[6:])})
    return events


def pixels(data_url_or_bytes) -> np.ndarray:
    data = data_url_or_bytes
    if isinstance(data, str):
        data = base64.b64decode(data.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)


def render(engine, z) -> np.ndarray:
    from facemath_core.data.images import from_unit

    return from_unit(engine.backend.generate(np.asarray(z, np.float32)[None]))[0].astype(np.int16)


def assert_same_picture(a, b):
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 2  # a batch of one and a batch of many may round differently


def assert_error(answer, status, *words):
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


# --- menus and faces ----------------------------------------------------------------------------------------------


def test_menus_list_the_registry_plugins_and_the_faces(app, engine, synth_faces):
    from facemath_core.projection.projector import PRESETS

    menus = new_client(app).get("/api/menus").json()
    assert menus["losses"] == engine.registry.names("loss") and "perceptual" in menus["losses"]
    assert menus["blenders"] == engine.registry.names("blender") and "poisson" in menus["blenders"]
    assert menus["inits"] == engine.registry.names("init")
    assert menus["presets"] == list(PRESETS)
    assert menus["faces"] == sorted(p.name for p in (synth_faces / "img_align_celeba").glob("*.png"))
    assert menus["image_size"] == 32 and menus["vae"] is True and menus["vaegan"] is True
    assert menus["optimizers"] == ["adam", "momentum", "sgd"] and menus["optimizer_default"] == "adam"
    assert menus["constraints"] == engine.registry.names("constraint") and menus["constraint_default"] == "clip"


def test_menus_describe_every_parameter_as_the_plugins_declare_it(app):
    """The page builds its controls from these: the schemas declared in plugins/ (facemath_plugins), as
    `facemath plugins --json` shows them."""
    components = new_client(app).get("/api/menus").json()["components"]
    assert set(components) == {"loss", "optimizer", "init", "constraint", "blender", "operator"}
    form = components["loss"]["perceptual"]["schema"]["form"]
    assert form["choices"] == ["nonsaturating", "saturating"] and form["default"] == "nonsaturating"
    assert components["loss"]["weighted-contextual"]["schema"]["window"] == {
        "default": 7, "type": "int", "ge": 1, "help": "Side of the square window, in pixels."
    }  # fmt: skip
    lr = components["optimizer"]["adam"]["schema"]["lr"]
    assert lr["type"] == "float" and lr["gt"] == 0 and lr["default"] == 0.01
    assert components["optimizer"]["momentum"]["schema"]["momentum"]["lt"] == 1
    assert components["loss"]["l2"]["schema"] == {} and components["operator"]["slerp"]["arity"] == 3
    reduce = components["loss"]["contextual"]["schema"]["reduce"]  # issue 31: the lambda knob's scale
    assert reduce["choices"] == ["sum", "mean"] and reduce["default"] == "sum"
    assert all(c["provider"].startswith("facemath ") for kind in components.values() for c in kind.values())


def test_page_and_assets_are_served_from_the_package_and_set_a_session_cookie(app):
    client = new_client(app)
    page = client.get("/")
    assert page.status_code == 200 and "studio.js" in page.text and "http" not in page.text.split("<body>")[1]
    assert "facemath_studio_8765" in page.cookies
    for asset in ("studio.js", "studio.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_example_face_is_the_model_sized_image(app, engine, synth_faces):
    from facemath_core.data.images import crop_and_resize, read_image

    name = list(engine.face_files)[0]
    answer = new_client(app).get(f"/api/faces/{name}")
    expected = crop_and_resize(read_image(synth_faces / "img_align_celeba" / name), 32)
    assert np.array_equal(pixels(answer.content), expected)
    assert_error(new_client(app).get("/api/faces/nobody.png"), 400, "nobody.png")


# --- uploads ------------------------------------------------------------------------------------------------------


def png(image: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_is_resized_like_project_does_and_lives_in_the_session_tempdir(app):
    from facemath_core.data.images import crop_and_resize

    client = new_client(app)
    photo = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    answer = client.post("/api/upload?name=me.png", content=png(photo), headers=IMAGE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["face"] == "upload:me.png"
    assert np.array_equal(pixels(answer.json()["image"]), crop_and_resize(photo, 32))
    store = app.state.store
    assert all(p.is_relative_to(store.root) for s in store._sessions.values() for p in s.uploads.values())


def test_bad_uploads_are_one_line_each(app, monkeypatch):
    from facemath_core.studio.routes import faces as faces_routes

    client = new_client(app)
    assert_error(
        client.post("/api/upload?name=x.png", content=b"not an image", headers=IMAGE), 400, "x.png", "not an image"
    )
    assert_error(client.post("/api/upload?name=x.png", content=b"", headers=IMAGE), 400, "x.png", "empty")
    assert_error(client.post("/api/upload", content=png(np.zeros((8, 8, 3), np.uint8)), headers=IMAGE), 400, "name")
    assert_error(client.post("/api/upload?name=../x.png", content=b"x", headers=IMAGE), 400, "slashes")
    bomb = png(Image.new("1", (8000, 5100)))  # 40.8 million pixels in a few kilobytes
    assert len(bomb) < 100_000
    assert_error(client.post("/api/upload?name=bomb.png", content=bomb, headers=IMAGE), 400, "bomb.png", "pixel limit")
    monkeypatch.setattr(faces_routes, "MAX_UPLOAD_BYTES", 1000)
    big = png(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert_error(client.post("/api/upload?name=big.png", content=big, headers=IMAGE), 413, "big.png", "limit")
    # the server is still there
    assert client.get("/api/menus").status_code == 200


# --- projection ---------------------------------------------------------------------------------------------------


def test_projection_streams_every_step_and_ends_with_the_faces(projected):
    client, faces, events = projected
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, STEPS + 1))
    assert all(e["loss"] > 0 for e in progress)
    assert any("image" in e for e in progress)  # the reconstruction so far
    assert events[-1] == {"event": "done", "type": "done", "names": faces, "cancelled": False}
    library = client.get("/api/library").json()["faces"]
    assert [f["name"] for f in library] == faces and all(f["vae"] and f["vaegan"] for f in library)


def test_projection_matches_the_cli_projection_job(projected, engine, tmp_path):
    """The same faces, settings and seed through a ProjectionRun into a folder (what `facemath project` runs)
    give the same z."""
    from facemath_core.latent.latents import load_latents
    from facemath_core.projection.run import FolderSink, ProjectionRun, load_inputs
    from facemath_core.projection.settings import projection_config

    client, faces, _ = projected
    config = projection_config(engine.registry, steps=STEPS, batch_size=len(faces))
    run = ProjectionRun(engine.backend, engine.registry, config)
    inputs = load_inputs([str(engine.face_files[f]) for f in faces], 32)
    cli = run.run(inputs, FolderSink(tmp_path / "out"), warn=lambda line: None).latents
    answer = client.get("/api/library.npz?family=gan")
    (tmp_path / "studio.npz").write_bytes(answer.content)
    studio = load_latents(tmp_path / "studio.npz")
    np.testing.assert_allclose(studio.z, cli.z, atol=1e-5)
    np.testing.assert_allclose(studio.psnr, cli.psnr, atol=1e-3)
    assert studio.names == faces and studio.family == "gan" and studio.source == "projection"
    # and each library picture is G(z)
    for name, z in zip(faces, studio.z, strict=True):
        assert_same_picture(pixels(client.get(f"/api/library/{name}").content), render(engine, z))


@pytest.mark.slow
def test_library_npz_works_with_facemath_math_and_finds_the_labels(cli, projected, engine, tiny_export, tmp_path):

    client, faces, _ = projected
    for family in ("gan", "vae", "vaegan"):
        answer = client.get(f"/api/library.npz?family={family}")
        assert answer.status_code == 200
        (tmp_path / f"{family}.npz").write_bytes(answer.content)
    result = cli(
        "math", "mean(Smiling) + 0 * " + faces[0].split(".")[0], "--latents", str(tmp_path / "gan.npz"),
        "--models", str(tiny_export), "--out", str(tmp_path / "math"), "--exemplars", "0",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert (tmp_path / "math" / "result.png").exists()
    from facemath_core.latent.latents import load_latents

    vae = load_latents(tmp_path / "vae.npz")
    assert vae.family == "vae" and vae.source == "encoder" and vae.names == faces
    # the encoding beside each projection is what `facemath encode` computes for the same image
    from facemath_core.data.images import crop_and_resize, read_image, to_unit
    from facemath_core.latent.latents import encode_images

    images = np.stack([crop_and_resize(read_image(engine.face_files[f]), 32) for f in faces])
    encoded = encode_images(engine.backend, faces, faces, to_unit(images))
    np.testing.assert_allclose(vae.z, encoded.z, atol=1e-5)
    # and the VAE-GAN's, as `facemath encode --model vaegan` computes it
    vaegan = load_latents(tmp_path / "vaegan.npz")
    assert vaegan.family == "vaegan" and vaegan.model == "vaegan_decoder" and vaegan.names == faces
    encoded = encode_images(engine.backend, faces, faces, to_unit(images), family="vaegan")
    np.testing.assert_allclose(vaegan.z, encoded.z, atol=1e-5)


def test_download_png_of_a_library_face(projected):
    client, faces, _ = projected
    answer = client.get(f"/api/library/{faces[0]}?download=1&kind=target")
    assert answer.headers["content-type"] == "image/png" and "attachment" in answer.headers["content-disposition"]
    assert_error(client.get(f"/api/library/{faces[0]}?kind=completion"), 400, "completion")
    assert_error(client.get("/api/library/nobody.png"), 400, "nobody.png")


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({}, 400, ["faces"]),
        ({"faces": []}, 400, ["faces"]),
        ({"faces": ["example:nobody.png"]}, 400, ["nobody.png"]),
        ({"faces": ["somewhere:x"]}, 400, ["example:NAME"]),
        ({"faces": ["upload:never.png"]}, 400, ["never.png"]),
        ({"faces": ["example:000001.png"], "steps": 0}, 400, ["steps"]),
        ({"faces": ["example:000001.png"], "steps": "ten"}, 400, ["steps"]),
        ({"faces": ["example:000001.png"], "losses": ["nosuch=1"]}, 400, ["nosuch"]),
        ({"faces": ["example:000001.png"], "losses": ["contextual=-1"]}, 400, ["contextual=-1"]),
        ({"faces": ["example:000001.png"], "preset": "nosuch"}, 400, ["nosuch"]),
        ({"faces": ["example:000001.png"], "init": "nosuch"}, 400, ["nosuch"]),
        ({"faces": ["example:000001.png"], "blender": "nosuch", "mask": [0] + [1] * 1023}, 400, ["nosuch"]),
        ({"faces": ["example:000001.png"], "mask": [1, 0]}, 400, ["mask", "1024"]),
        ({"faces": ["example:000001.png"], "mask": [1] * 1024}, 400, ["mask", "nothing is painted"]),
        ({"faces": ["example:000001.png"], "mask": [2] * 1024}, 400, ["mask", "0 to 1"]),
        (
            {"faces": ["example:000001.png"], "optimizer": "sgd", "params": {"sgd": {"lr": -1}}},
            400,
            ["--param sgd.lr=-1", "must be a number > 0"],
        ),
        ({"faces": ["example:000001.png"], "optimizer": "nosuch"}, 400, ["nosuch", "optimizer"]),
        ({"faces": ["example:000001.png"], "optimizer": 5}, 400, ["optimizer", "give a name"]),
        ({"faces": ["example:000001.png"], "constraint": "nosuch"}, 400, ["nosuch", "constraint"]),
        (
            {
                "faces": ["example:000001.png"],
                "losses": ["perceptual=0.1"],
                "params": {"perceptual": {"form": "bogus"}},
            },
            400,
            ["form", "saturating"],
        ),
        ({"faces": ["example:000001.png"], "params": {"momentum": {"lr": 0.1}}}, 400, ["momentum", "not used"]),
        ({"faces": ["example:000001.png"], "params": {"adam": {"nosuch": 1}}}, 400, ["adam", "nosuch"]),
        ({"faces": ["example:000001.png"], "params": {"adam": {"lr": [1]}}}, 400, ["params", "adam.lr"]),
        ({"faces": ["example:000001.png"], "params": {"adam": 0.1}}, 400, ["params", "component"]),
        ({"faces": ["example:000001.png"], "params": {"adam.lr": {"x": 1}}}, 400, ["params", "component name"]),
        ({"faces": ["example:000001.png"], "optimiser": "sgd"}, 400, ["unknown field 'optimiser'"]),
    ],
)
def test_bad_projection_requests(app, body, status, words):
    assert_error(new_client(app).post("/api/project", json=body), status, *words)


def test_bad_json_and_no_job(app):
    client = new_client(app)
    assert_error(client.post("/api/project", content=b"{not json", headers=JSON), 400, "not JSON")
    assert_error(client.post("/api/project", content=b"[1, 2]", headers=JSON), 400, "JSON object")
    assert_error(client.get("/api/project/events"), 404, "no projection")
    assert client.post("/api/project/cancel", json={}).json() == {"cancelled": False}


def test_cancel_keeps_the_best_face_so_far_and_one_job_at_a_time(app, engine):
    client = new_client(app)
    face = f"example:{list(engine.face_files)[5]}"
    assert client.post("/api/project", json={"faces": [face], "steps": 5000}).status_code == 200
    assert_error(client.post("/api/project", json={"faces": [face]}), 409, "already running")
    with client.stream("GET", "/api/project/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: progress"):
                break  # it runs: stop it
    assert client.post("/api/project/cancel", json={}).json() == {"cancelled": True}
    done = read_events(client)[-1]
    assert done["event"] == "done" and done["cancelled"] is True
    steps = max(e["step"] for e in read_events(client) if e["event"] == "progress")
    assert steps < 5000
    library = client.get("/api/library").json()["faces"]
    assert [f["name"] for f in library] == done["names"] == [face.split(":")[1]]
    assert library[0]["loss"] > 0 and library[0]["psnr"] > 0  # the best z so far, with its loss


def test_brush_completion_keeps_the_known_pixels_and_fills_the_hole(app, engine):
    client = new_client(app)
    face = list(engine.face_files)[6]
    mask = np.ones((32, 32), int)
    mask[8:24, 8:24] = 0
    body = {"faces": [f"example:{face}"], "steps": STEPS, "mask": mask.ravel().tolist(), "blender": "overlay"}
    assert client.post("/api/project", json=body).status_code == 200
    assert read_events(client)[-1]["event"] == "done"
    completion = pixels(client.get(f"/api/library/{face}?kind=completion").content)
    target = pixels(client.get(f"/api/library/{face}?kind=target").content)
    generated = pixels(client.get(f"/api/library/{face}").content)
    known = mask.astype(bool)
    assert np.array_equal(completion[known], target[known])  # overlay keeps every known pixel
    assert np.array_equal(completion[~known], generated[~known])  # and fills the hole with G(z)


def test_sessions_do_not_share_their_library(projected, app):
    other = new_client(app)
    assert other.get("/api/library").json() == {"faces": []}
    assert_error(other.get("/api/library.npz"), 400, "empty")
    assert_error(other.post("/api/math", json={"expression": projected[1][0].split(".")[0]}), 400, "empty")


# --- arithmetic, sliders, interpolation, analogy ------------------------------------------------------------------


def library_z(client, tmp_path) -> dict[str, np.ndarray]:
    from facemath_core.latent.latents import load_latents

    (tmp_path / "lib.npz").write_bytes(client.get("/api/library.npz").content)
    latents = load_latents(tmp_path / "lib.npz")
    return {name.split(".")[0]: z for name, z in zip(latents.names, latents.z, strict=True)}


def test_math_shows_the_terms_and_the_result(projected, engine, tmp_path):
    client, faces, _ = projected
    z = library_z(client, tmp_path)
    a, b, c = list(z)[:3]
    answer = client.post("/api/math", json={"expression": f"{a} - {b} + {c}"})
    assert answer.status_code == 200, answer.text
    worked = answer.json()
    assert [(t["sign"], t["text"], t["faces"]) for t in worked["terms"]] == [
        ("+", a, [faces[0]]),
        ("-", b, [faces[1]]),
        ("+", c, [faces[2]]),
    ]
    assert_same_picture(pixels(worked["result"]), render(engine, z[a] - z[b] + z[c]))
    assert_same_picture(pixels(worked["terms"][1]["image"]), render(engine, z[b]))


@pytest.mark.parametrize(
    "expression, words",
    [("", ["empty"]), ("a -", ["column"]), ("nobody", ["nobody"]), ("mean(", ["column"])],
)
def test_bad_expressions(projected, expression, words):
    assert_error(projected[0].post("/api/math", json={"expression": expression or " "}), 400, *words)


def test_sliders_move_the_face_along_the_attribute_vectors(projected, engine, synth_faces, tmp_path):
    from facemath_core.data.folders import read_attribute_file
    from facemath_core.latent.attribute_vectors import attribute_vectors

    client, faces, _ = projected
    rows, names, values = read_attribute_file(synth_faces / "list_attr_celeba.txt")
    labels = np.stack([values[rows.index(f)] for f in faces]) > 0
    varying = [n for k, n in enumerate(names) if 0 < labels[:, k].sum() < len(faces)]
    answer = client.get("/api/sliders").json()
    assert answer["attributes"] == varying  # exactly the attributes some library faces have and some lack
    z = library_z(client, tmp_path)
    base = faces[0].split(".")[0]
    still = client.post("/api/slide", json={"base": faces[0], "amounts": {}}).json()["image"]
    assert_same_picture(pixels(still), render(engine, z[base]))
    vectors = attribute_vectors(np.stack(list(z.values())), labels, names)
    attribute = varying[0]
    moved = client.post("/api/slide", json={"base": faces[0], "amounts": {attribute: 1.5}}).json()["image"]
    assert_same_picture(pixels(moved), render(engine, z[base] + 1.5 * vectors[names.index(attribute)]))
    assert np.abs(pixels(moved) - pixels(still)).mean() > 0.5


def test_bad_slider_requests(projected):
    client, faces, _ = projected
    assert_error(client.post("/api/slide", json={"base": faces[0], "amounts": {"Nope": 1}}), 400, "Nope")
    assert_error(client.post("/api/slide", json={"base": faces[0], "amounts": {"Smiling": 99}}), 400, "99")
    assert_error(client.post("/api/slide", json={"base": "nobody", "amounts": {}}), 400, "nobody")
    assert_error(client.post("/api/slide", json={"base": faces[0], "amounts": [1]}), 400, "amounts")


def test_sliders_need_two_labelled_faces(app, engine):
    client = new_client(app)
    assert_error(client.get("/api/sliders"), 400, "0 labelled")


def test_interpolation_scrubber(projected, engine, tmp_path):
    client, faces, _ = projected
    z = library_z(client, tmp_path)
    a, b, c = (f.split(".")[0] for f in faces[:3])

    def at(t, method="lerp", names=faces[:3]):
        return client.post("/api/interpolate", json={"names": names, "method": method, "t": t})

    assert_same_picture(pixels(at(0).json()["image"]), render(engine, z[a]))
    assert_same_picture(pixels(at(2, "slerp").json()["image"]), render(engine, z[c]))
    assert_same_picture(pixels(at(1.25).json()["image"]), render(engine, 0.75 * z[b] + 0.25 * z[c]))
    # slerp by its formula (Shoemake 1985): sin((1-t) w) / sin w * a + sin(t w) / sin w * b
    w = np.arccos(np.dot(z[a], z[b]) / np.linalg.norm(z[a]) / np.linalg.norm(z[b]))
    expected = np.sin(0.5 * w) / np.sin(w) * (z[a] + z[b])
    assert_same_picture(pixels(at(0.5, "slerp").json()["image"]), render(engine, expected))
    assert_error(at(3), 400, "t=3")
    assert_error(at(0, "nosuch"), 400, "nosuch")
    assert_error(at(0, names=faces[:1]), 400, "2 to")
    assert_error(at(0, names=[faces[0], "nobody"]), 400, "nobody")
    # operator parameters, typed and checked by the operator's schema as `--param` is for `facemath interpolate`
    body = {"names": faces[:2], "method": "slerp", "t": 0.5}
    answer = client.post("/api/interpolate", json={**body, "params": {"slerp": {"eps": 1}}})
    assert_error(answer, 400, "--param slerp.eps", "no parameter 'eps'")
    answer = client.post("/api/interpolate", json={**body, "params": {"lerp": {"eps": 1}}})
    assert_error(answer, 400, "lerp", "not used here")


def test_analogy_draws_the_j_diagram(projected):
    client, faces, _ = projected
    a, b, c = (f.split(".")[0] for f in faces[:3])
    answer = client.post("/api/analogy", json={"a": a, "b": b, "c": c, "size": 3})
    assert answer.status_code == 200, answer.text
    small = pixels(answer.json()["image"])
    big = pixels(client.post("/api/analogy", json={"a": a, "b": b, "c": c, "size": 5}).json()["image"])
    assert big.shape[0] > small.shape[0] and big.shape[1] > small.shape[1]
    assert_error(client.post("/api/analogy", json={"a": a, "b": b, "c": c, "size": 1}), 400, "size")
    assert_error(client.post("/api/analogy", json={"a": a, "b": b}), 400, "c:")


# --- robustness ---------------------------------------------------------------------------------------------------


def test_a_bug_is_a_json_500_without_traceback_and_the_server_goes_on(app, engine, monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "menus", broken)
    client = new_client(app)
    assert_error(client.get("/api/menus"), 500, "internal error", "boom")
    monkeypatch.undo()
    assert client.get("/api/menus").status_code == 200


@pytest.mark.slow
def test_the_command_refuses_a_port_in_use(tiny_export):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_facemath("studio", "--models", str(tiny_export), "--port", str(port))
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [f"error: --host 127.0.0.1 --port {port}: cannot listen there "
                                                  "(Address already in use)"]  # fmt: skip


@pytest.mark.slow
def test_the_same_studio_on_tf_serving_matches_the_embedded_one(projected, tiny_export, synth_faces, tmp_path):
    """`facemath studio --server`: the stand-in TF Serving over the same models gives the same projection (to
    float32 accuracy, as the projector test of test_serving.py shows for the backends themselves)."""
    from facemath_core.host.manager import load_registry
    from facemath_core.serving.backends import open_backend
    from facemath_core.serving.model_config import entries_for_folder
    from facemath_core.serving.standin import build_server
    from facemath_core.studio.app import create_app
    from facemath_core.studio.engine import Engine

    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    remote_app = None
    try:
        remote = Engine(open_backend(server=f"127.0.0.1:{port}"), load_registry(builtins_only=True), synth_faces)
        assert "127.0.0.1" in remote.menus()["backend"]
        remote_app = create_app(remote)
        client = new_client(remote_app)
        faces = projected[1]
        assert client.post("/api/project", json={"faces": [f"example:{f}" for f in faces], "steps": STEPS}).is_success
        assert read_events(client)[-1]["names"] == faces
        np.testing.assert_allclose(
            np.stack(list(library_z(client, tmp_path).values())),
            np.stack(list(library_z(projected[0], tmp_path).values())),
            atol=1e-3,
        )
        assert client.get("/api/sliders").json()["attributes"]
    finally:
        if remote_app is not None:
            remote_app.state.store.close()
        server.stop(0)


@pytest.mark.slow
def test_the_chosen_optimizer_constraint_and_parameters_reach_the_run(app, engine, tmp_path):
    """The page's optimizer, constraint and parameters: the studio's z equals the CLI run's with the same
    `--optimizer`, `--constraint` and `--param` options, and differs from the default run's."""
    from facemath_core.latent.latents import load_latents
    from facemath_core.projection.run import FolderSink, ProjectionRun, load_inputs
    from facemath_core.projection.settings import projection_config

    faces = list(engine.face_files)[8:10]
    losses = ["contextual=1", "weighted-contextual=0.5"]
    client = new_client(app)
    body = {"faces": [f"example:{f}" for f in faces], "steps": STEPS, "init": "uniform", "losses": losses}
    chosen = {
        "optimizer": "sgd",
        "constraint": "tanh",
        "params": {"sgd": {"lr": 0.5}, "weighted-contextual": {"window": 3}},
    }
    assert client.post("/api/project", json={**body, **chosen}).status_code == 200
    assert read_events(client)[-1]["event"] == "done"
    (tmp_path / "studio.npz").write_bytes(client.get("/api/library.npz").content)
    studio = load_latents(tmp_path / "studio.npz").z
    inputs = load_inputs([str(engine.face_files[f]) for f in faces], 32)

    def cli_run(out: str, **options):
        config = projection_config(
            engine.registry, loss_plugins=losses, steps=STEPS, init="uniform", batch_size=len(faces), **options
        )
        return (
            ProjectionRun(engine.backend, engine.registry, config)
            .run(inputs, FolderSink(tmp_path / out), warn=lambda line: None)
            .latents.z
        )

    same = cli_run("same", optimizer="sgd", constraint="tanh", params=["sgd.lr=0.5", "weighted-contextual.window=3"])
    np.testing.assert_allclose(studio, same, atol=1e-5)
    default = cli_run("default")
    assert np.abs(studio - default).max() > 1e-3  # the choices changed the run


def test_uploads_are_bounded_per_session(app, monkeypatch):
    from facemath_core.studio import sessions

    monkeypatch.setattr(sessions, "MAX_UPLOADS", 3)
    client = new_client(app)
    face = png(np.full((32, 32, 3), 128, np.uint8))
    for name in ("a.png", "a.png", "b.png", "c.png", "d.png"):
        assert client.post(f"/api/upload?name={name}", content=face, headers=IMAGE).status_code == 200
    session = app.state.store._sessions[client.cookies["facemath_studio_8765"]]
    assert list(session.uploads) == ["b.png", "c.png", "d.png"]  # a replaced upload and the oldest are gone
    assert sorted(p.name for p in session.folder.iterdir()) == sorted(p.name for p in session.uploads.values())
    assert_error(client.post("/api/project", json={"faces": ["upload:a.png"]}), 400, "a.png")
