"""Faces in photos (facemath_core/data/align.py): detection through the MTCNN plugin, alignment to a landmark
template, EXIF orientation, pasting back. Checked on photos nobody here made (scikit-image's astronaut, its LFW
faces, the cat chelsea) and on synthetic faces whose landmarks the renderer knows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from facemath_core.base.errors import FacemathError
from facemath_core.data.align import (
    CELEBA_LANDMARKS,
    Aligner,
    Template,
    celeba_template,
    paste,
    similarity,
    template_for_folder,
    warp,
)
from facemath_core.data.images import MAX_PIXELS, read_image
from facemath_core.data.synth import FaceSampler, face_landmarks, face_rng, landmark_template, render_face, to_uint8
from facemath_core.host.manager import load_registry

SYNTH = Template(landmark_template(2000), 64, "the renderer's mean landmarks")


@pytest.fixture(scope="module")
def registry():
    return load_registry(builtins_only=True)


@pytest.fixture(scope="module")
def aligner(registry):
    notes = []
    found = Aligner(registry, SYNTH, note=notes.append)
    found.notes = notes
    return found


def save(path, rgb, **info):
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, **info)
    return path


# --- templates -------------------------------------------------------------------------------------------------


def test_celeba_template_is_the_cited_positions_cropped_as_the_loader_crops():
    """At 108 pixels the crop is CelebA's central 108x108 of 178x218, unscaled: the cited positions less (35, 55)."""
    np.testing.assert_allclose(celeba_template(108).points, np.array(CELEBA_LANDMARKS) - [35, 55])
    # resizing 108 -> 64 maps pixel centres: u -> (u + 0.5) * 64 / 108 - 0.5
    np.testing.assert_allclose(
        celeba_template(64).points, (np.array(CELEBA_LANDMARKS) - [35, 55] + 0.5) * 64 / 108 - 0.5
    )
    np.testing.assert_allclose(celeba_template(108).at(64).points, celeba_template(64).points)


def test_the_renderer_reports_where_it_drew_the_eyes_and_nose():
    """With the gaze straight ahead the pupil (RGB 0.03) is drawn exactly at the eye's landmark, and the nose's
    shadow darkens the skin at the nose's landmark."""
    sampler = FaceSampler()
    checked = 0
    for i in range(40):
        spec = sampler.sample(face_rng(11, i))
        if spec.attributes["Eyeglasses"]:
            continue  # tinted lenses over the pupils
        spec = type(spec)(**{**spec.__dict__, "gaze_x": 0.0, "gaze_y": 0.0})
        image = render_face(spec, 256)
        points = face_landmarks(spec, 256)
        for x, y in points[:2]:
            assert image[round(y), round(x)].max() < 0.1  # the pupil
        nose_x, nose_y = points[2]
        row, col = round(nose_y), round(nose_x)
        cheeks = (image[row, col - 16] + image[row, col + 16]) / 2  # the skin either side (shading is smooth)
        assert image[row, col].sum() < cheeks.sum()
        checked += 1
    assert checked >= 10


def test_a_synth_folder_gives_its_renderers_template(tmp_path):
    """`data synth` records its recipe; the template of the folder is the mean landmarks of its training faces."""
    from facemath_core.data.synth import write_synthetic_folder

    write_synthetic_folder(tmp_path / "faces", 20, seed=4, size=32, held_out_percent=25)
    template = template_for_folder(tmp_path / "faces", 32)
    np.testing.assert_allclose(template.points, landmark_template(15, seed=4, size=32))
    assert template.size == 32 and "15 training faces" in template.source


def test_a_celeba_folder_gives_the_mean_of_its_landmark_file(tmp_path):
    folder = tmp_path / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    save(folder / "img_align_celeba" / "000001.jpg", np.zeros((218, 178, 3), np.uint8))
    rows = ["000001.jpg 70 110 108 112 88 136 72 152 105 150", "000002.jpg 68 112 108 110 88 136 72 152 105 154"]
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (folder / "list_landmarks_align_celeba.txt").write_text(f"2\n{header}\n" + "\n".join(rows) + "\n")
    np.testing.assert_allclose(template_for_folder(folder, 108).points, np.array(CELEBA_LANDMARKS) - [35, 55])


# --- the geometry ------------------------------------------------------------------------------------------------


def test_alignment_undoes_a_known_similarity():
    """A face turned 20 degrees, scaled 3x and moved inside a bigger photo comes back: the estimated transform is
    the inverse of the one applied, and the crop is the face again (two bilinear resamplings apart)."""
    from skimage.transform import SimilarityTransform
    from skimage.transform import warp as sk_warp

    spec = FaceSampler().sample(face_rng(2, 0))
    face = to_uint8(render_face(spec, 64))
    template = Template(face_landmarks(spec, 64), 64, "this face's own landmarks")
    applied = SimilarityTransform(scale=3.0, rotation=np.deg2rad(20), translation=(150, 40)).params
    photo = sk_warp(face.astype(float), np.linalg.inv(applied), output_shape=(330, 400), order=1, preserve_range=True)
    photo = np.rint(photo).astype(np.uint8)
    landmarks = (applied @ np.c_[template.points, np.ones(5)].T).T[:, :2]
    matrix = similarity(landmarks, template)
    np.testing.assert_allclose(matrix, np.linalg.inv(applied), atol=1e-9)
    crop, padded = warp(photo, matrix, 64)
    assert not padded
    error = np.abs(crop.astype(float) - face)[4:-4, 4:-4]  # the border of the rotated square is blurred by the edge
    assert error.mean() < 3.0  # grey levels; an offset of one pixel would cost about 12


def test_alignment_error_on_synthetic_faces_against_the_template():
    """Synthetic faces drawn turned, scaled and shifted at 256 pixels, aligned with the landmarks the renderer knows:
    their five points land within a pixel of the template at 64 (what is left is what no similarity can undo: the
    head's yaw and the smile), against 2.7 pixels for the same faces rendered at 64 without alignment."""
    sampler = FaceSampler()
    aligned, raw = [], []
    for i in range(100):
        spec = sampler.sample(face_rng(99, i))
        points = face_landmarks(spec, 256)
        matrix = similarity(points, SYNTH)
        moved = (matrix @ np.c_[points, np.ones(5)].T).T[:, :2]
        aligned.append(np.linalg.norm(moved - SYNTH.points, axis=1).mean())
        raw.append(np.linalg.norm(face_landmarks(spec, 64) - SYNTH.points, axis=1).mean())
    assert np.mean(aligned) < 1.1 and np.mean(aligned) < 0.5 * np.mean(raw)


# --- real photos -------------------------------------------------------------------------------------------------


def test_the_astronaut_is_found_and_framed_like_the_training_faces(aligner):
    (face,) = aligner.align(data.astronaut(), "astronaut.png", "astronaut.png")
    assert face.name == "astronaut_1.png" and face.index == 1 and face.crop.shape == (64, 64, 3)
    moved = (face.matrix @ np.c_[np.asarray(face.face.landmarks), np.ones(5)].T).T[:, :2]
    assert np.abs(moved - SYNTH.points).max() < 2.0  # her landmarks land on the template
    assert face.padded  # the synthetic faces' framing reaches above her head, past the photo's top


def test_the_cat_has_no_face(aligner):
    with pytest.raises(FacemathError, match=r"^no face found in chelsea.png \(detector mtcnn, min face 20 px\)$"):
        aligner.align(data.chelsea(), "chelsea.png", "chelsea.png")


def test_a_face_below_min_face_is_named(registry):
    small = Aligner(registry, SYNTH, min_face=200)
    with pytest.raises(FacemathError, match=r"no face of at least 200 px in a.png .*1 smaller face found, the largest"):
        small.align(data.astronaut(), "a.png", "a.png")


def lfw_faces(count: int, side: int = 160) -> list[np.ndarray]:
    """scikit-image's LFW faces (25x25 grey), upscaled: real faces nobody here made."""
    faces = data.lfw_subset()[:count]
    return [
        np.repeat(
            np.asarray(Image.fromarray(np.uint8(f * 255)).resize((side, side), Image.Resampling.BICUBIC))[..., None],
            3,
            2,
        )
        for f in faces
    ]


def test_lfw_faces_are_found(aligner):
    found = 0
    for i, face in enumerate(lfw_faces(20)):
        try:
            found += len(aligner.align(face, f"lfw{i}.png", f"lfw{i}.png")) == 1
        except FacemathError:
            pass
    assert found >= 18


def test_several_faces_largest_first_and_max_faces(registry):
    """A composite of the astronaut, a smaller copy of her and an LFW face: three faces, largest first; with
    --max-faces 2 the two largest, and a note."""
    astronaut = data.astronaut()
    photo = np.full((520, 1100, 3), 200, np.uint8)
    photo[:512, :512] = astronaut
    photo[100:356, 560:816] = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.Resampling.LANCZOS))
    photo[150:246, 880:976] = lfw_faces(1, side=96)[0]
    notes = []
    every = Aligner(registry, SYNTH, note=notes.append).align(photo, "group.png", "group.png")
    assert [f.name for f in every] == ["group_1.png", "group_2.png", "group_3.png"]
    sizes = [f.face.size for f in every]
    assert sizes == sorted(sizes, reverse=True)
    # the astronaut, the LFW face (about 80 px), her half-size copy (about 55 px)
    assert every[0].face.box[2] < 512 and every[1].face.box[0] > 870 and 560 < every[2].face.box[0] < 816
    two = Aligner(registry, SYNTH, max_faces=2, note=notes.append).align(photo, "group.png", "group.png")
    assert [f.face.box for f in two] == [f.face.box for f in every[:2]]
    assert "group.png: 3 faces found, aligned the largest 2 (--max-faces 2)" in notes


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16", "RGBA", "P"])
def test_every_kind_of_photo_is_aligned(aligner, tmp_path, mode):
    """Grey, CMYK, 16-bit, alpha and palette photos are read as RGB and their face found."""
    image = Image.fromarray(data.astronaut())
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)  # 16-bit grey
    else:
        image = image.convert(mode)
    path = tmp_path / f"astronaut.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    (face,) = aligner.align_files([path])
    assert face.face.score > 0.9


# The EXIF orientations (TIFF tag 274): how a camera stored the upright picture U. A viewer undoes it.
ORIENTATIONS = {
    1: lambda u: u,
    2: np.fliplr,  # mirrored
    3: lambda u: np.rot90(u, 2),  # upside down
    4: np.flipud,
    5: lambda u: np.fliplr(np.rot90(u, -1)),  # mirrored and turned
    6: lambda u: np.rot90(u, 1),  # the camera was held turned: the viewer turns it 90 degrees clockwise
    7: lambda u: np.fliplr(np.rot90(u, 1)),
    8: lambda u: np.rot90(u, -1),
}


def test_all_eight_exif_orientations_give_the_same_crop(aligner, tmp_path):
    upright = data.astronaut()[:400, 60:460]
    crops = []
    for orientation, stored in ORIENTATIONS.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = save(tmp_path / f"o{orientation}.png", stored(upright), exif=exif)
        assert np.array_equal(read_image(path), upright), orientation
        (face,) = aligner.align_files([path])
        crops.append(face.crop)
    assert all(np.array_equal(crop, crops[0]) for crop in crops)


def test_a_huge_photo_is_refused_before_detection(registry, tmp_path):
    """The pixel limit applies when the photo is opened, before it is decoded, so nothing reaches the detector."""
    path = tmp_path / "huge.png"
    side = int(np.sqrt(MAX_PIXELS)) + 10
    Image.new("L", (side, side)).save(path)
    with pytest.raises(FacemathError, match=r"huge.png: .*over the 40,000,000 pixel limit"):
        Aligner(registry, SYNTH).align_files([path])


def test_a_face_at_the_border_is_padded_by_reflection(registry):
    notes = []
    corner = data.astronaut()[40:300, 150:400]  # her face near the top edge
    (face,) = Aligner(registry, SYNTH, note=notes.append).align(corner, "corner.png", "corner.png")
    assert face.padded and any("filled in by reflection" in n for n in notes)
    # the part above the photo mirrors the part below its top row: no black band
    assert face.crop[:8].mean() > 40


# --- pasting back ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blender", ["feather", "overlay", "poisson"])
def test_paste_changes_only_the_face_region(aligner, registry, blender):
    photo = data.astronaut()
    (face,) = aligner.align(photo, "astronaut.png", "astronaut.png")
    edited = 255 - face.crop
    out, changed = paste(photo, [(face, edited)], SYNTH, registry.get("blender", blender), {})
    assert out.shape == photo.shape and changed.any()
    assert np.array_equal(out[~changed], photo[~changed])
    # every changed pixel maps into the crop's face ellipse (give or take a pixel of the bilinear edge)
    ys, xs = np.nonzero(changed)
    spots = (face.matrix @ np.c_[xs, ys, np.ones(len(xs))].T).T[:, :2]
    # the ellipse face_region draws: centred on the landmarks' mean, 1.1 and 1.45 eye distances across
    centre, eyes = SYNTH.points.mean(axis=0), np.linalg.norm(SYNTH.points[1] - SYNTH.points[0])
    radius = np.hypot((spots[:, 0] - centre[0]) / (1.1 * eyes), (spots[:, 1] - centre[1]) / (1.45 * eyes))
    assert radius.max() <= 1.0 + 1.5 / (1.1 * eyes)  # a crop pixel and a half: the bilinear edge
    assert (radius <= 1.0).mean() > 0.8
    assert (out[changed] != photo[changed]).any()
