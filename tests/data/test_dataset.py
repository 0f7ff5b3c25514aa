import numpy as np
import pytest
from PIL import Image

from facemath_core.base.errors import FacemathError
from facemath_core.data.folders import (
    ATTR_FILE,
    IMAGE_DIR,
    PARTITION_FILE,
    load_folder_images,
    open_faces,
    read_attribute_file,
    read_factors,
)
from facemath_core.data.pipeline import make_dataset
from facemath_core.data.synth import ATTRIBUTES

# The 40 attribute names of real CelebA, in its order.
CELEBA_40 = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair "
    "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
    "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()


@pytest.fixture
def celeba_layout(tmp_path):
    """A miniature real-CelebA folder: 178x218 JPEGs, the 40-attribute file and the partition file."""
    root = tmp_path / "celeba"
    (root / IMAGE_DIR).mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, 7):
        image = rng.integers(0, 60, (218, 178, 3), np.uint8)
        image[55:163, 35:143] = 40 * i  # the central 108x108 crop has a known colour
        Image.fromarray(image).save(root / IMAGE_DIR / f"{i:06d}.jpg", quality=95)
        values = rng.choice([-1, 1], len(CELEBA_40))
        rows.append(f"{i:06d}.jpg " + " ".join(f"{v:2d}" for v in values))
    (root / ATTR_FILE).write_text(f"6\n{' '.join(CELEBA_40)}\n" + "\n".join(rows) + "\n")
    (root / PARTITION_FILE).write_text("".join(f"{i:06d}.jpg {0 if i <= 4 else 2}\n" for i in range(1, 7)))
    return root


def test_reads_the_celeba_layout(celeba_layout):
    faces = open_faces(celeba_layout)
    assert faces.names == [f"{i:06d}.jpg" for i in range(1, 7)]
    assert faces.attribute_names == tuple(CELEBA_40)
    assert faces.attributes.shape == (6, 40)
    assert list(faces.held_out) == [False] * 4 + [True] * 2
    images = load_folder_images(faces, 64)
    assert images.shape == (6, 64, 64, 3)
    # Crop 108 then resize: the random border is gone, the central colour remains.
    for i in range(6):
        assert abs(float(images[i, 8:56, 8:56].mean()) - 40 * (i + 1)) < 3


def test_synthetic_folder_is_written_exactly_like_celeba(synth_faces):
    lines = (synth_faces / ATTR_FILE).read_text().splitlines()
    assert lines[0] == "48"
    assert lines[1].split() == list(ATTRIBUTES)
    name, *values = lines[2].split()
    assert name == "000001.png" and set(values) <= {"1", "-1"} and len(values) == len(ATTRIBUTES)
    faces = open_faces(synth_faces)
    assert len(faces.paths) == 48 and faces.attributes.shape == (48, len(ATTRIBUTES))
    assert load_folder_images(faces, 32).shape == (48, 32, 32, 3)
    names, factors = read_factors(faces)
    assert "yaw" in names and factors.shape == (48, len(names))


def test_attribute_values_match_the_rendered_faces(synth_faces):
    """The label file agrees with the renderer: re-render face 1 from its seed and compare its attributes."""
    from facemath_core.data.synth import FaceSampler, face_rng

    faces = open_faces(synth_faces)
    spec = FaceSampler().sample(face_rng(3, 0))
    for name in ATTRIBUTES:
        assert faces.attribute(name)[0] == spec.attributes[name]


def test_split_never_mixes(synth_faces):
    faces = open_faces(synth_faces)
    train, held = faces.split("train"), faces.split("held-out")
    assert set(train.names).isdisjoint(held.names)
    assert sorted(train.names + held.names) == sorted(faces.names)
    assert len(held.paths) == 4  # the last 10% of 48, as the synth partition file says
    with pytest.raises(FacemathError, match="--split 'test'"):
        faces.split("test")


def test_plain_folder_without_attributes(tmp_path):
    for i in range(30):
        Image.fromarray(np.full((40, 30, 3), i, np.uint8)).save(tmp_path / f"img{i:02d}.png")
    faces = open_faces(tmp_path)
    assert faces.attributes is None and len(faces.paths) == 30
    # Without a partition file the split is by a hash of the name: stable whatever else is in the folder.
    held = set(faces.split("held-out").names)
    (tmp_path / "img00.png").unlink()
    assert set(open_faces(tmp_path).split("held-out").names) == held - {"img00.png"}
    with pytest.raises(FacemathError, match="has no list_attr_celeba.txt"):
        faces.attribute("Smiling")


def test_pipeline_scales_shuffles_and_batches(synth_faces):
    images = load_folder_images(open_faces(synth_faces), 32)
    batches = list(make_dataset(images, 16, seed=0))
    assert len(batches) == 3 and batches[0].shape == (16, 32, 32, 3)
    values = np.concatenate([b.numpy() for b in batches])
    assert values.min() >= -1.0 and values.max() <= 1.0
    # Shuffled: not the folder's order, but the same images.
    assert not np.allclose(values, images.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(np.sort(values.ravel()), np.sort((images.astype(np.float32) / 127.5 - 1.0).ravel()))


@pytest.mark.parametrize(
    "content, message",
    [
        ("x\nA B\n", ":1: expected the number of images"),
        ("2\nA B\n1.png 1 1\n", "says 2 images but there are 1 row"),
        ("1\nA B\n1.png 1\n", ":3: expected a file name and 2 values"),
        ("1\nA B\n1.png 1 0\n", ":3: attribute values must be 1 or -1"),
    ],
)
def test_bad_attribute_files_point_at_the_line(tmp_path, content, message):
    (tmp_path / ATTR_FILE).write_text(content)
    with pytest.raises(FacemathError, match=message):
        read_attribute_file(tmp_path / ATTR_FILE)


def test_missing_listed_images_and_empty_folders(tmp_path):
    (tmp_path / ATTR_FILE).write_text("1\nA\nmissing.png 1\n")
    with pytest.raises(FacemathError, match="1 listed images do not exist"):
        open_faces(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FacemathError, match="no images found"):
        open_faces(empty)
    with pytest.raises(FacemathError, match="no such folder"):
        open_faces(tmp_path / "nowhere")


# --- TFRecord shards (`facemath data pack`) ---------------------------------------------------------------------


def test_tfrecord_round_trip_is_lossless(cli, synth_faces, celeba_layout, tmp_path):
    """Shards decode to the very pixels, attributes, names and split that reading the folder gives."""

    from facemath_core.data.pipeline import load_split
    from facemath_core.data.tfrecords import is_shard_folder, read_index

    for name, folder, size in (("synth", synth_faces, 32), ("celeba", celeba_layout, 16)):
        shards = tmp_path / f"{name}_shards"
        result = cli("data", "pack", str(folder), "--out", str(shards), "--shard-size", "5")
        assert result.code == 0, result.stderr
        faces = open_faces(folder)
        index = read_index(shards)
        assert is_shard_folder(shards) and not is_shard_folder(folder)
        assert index["count"] == len(faces.paths) and len(index["shards"]) == -(-len(faces.paths) // 5)
        assert sorted(p.name for p in shards.iterdir()) == sorted(
            [s["file"] for s in index["shards"]] + ["shards.json"]
        )
        for split in ("all", "train", "held-out"):
            direct, packed = load_split(folder, size, split), load_split(shards, size, split)
            part = faces.split(split)
            assert packed.names == direct.names == part.names
            np.testing.assert_array_equal(packed.images, load_folder_images(part, size))
            np.testing.assert_array_equal(packed.attributes, part.attributes)
            assert packed.attribute_names == faces.attribute_names


def test_pack_refuses_bad_input_in_one_line(cli, synth_faces, tmp_path):

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    cases = [
        (["--shard-size", "0", "--out", str(tmp_path / "a")], "--shard-size 0"),
        (["--out", str(tmp_path / "taken")], "not empty"),
    ]
    for extra, expected in cases:
        result = cli("data", "pack", str(synth_faces), *extra)
        assert result.code == 1 and result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and not (tmp_path / "a").exists()
    result = cli("data", "pack", str(tmp_path / "nothing"), "--out", str(tmp_path / "b"))
    assert result.code == 1 and "no such folder" in result.stderr and not (tmp_path / "b").exists()
