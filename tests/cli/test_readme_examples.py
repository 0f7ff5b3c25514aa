"""Every example of the README's command table runs on the shipped examples/faces (issue 15), with the tiny test
models and few steps (train with `--split all`: the example faces are all held out). export, serve and deploy
need a run or a server: tests/models/test_export.py and tests/serving/test_deploy.py run them; studio is a server
that runs until stopped: tests/studio/test_studio_browser.py starts it and drives it in a browser."""

import re
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "faces"
NOT_HERE = {"export", "serve", "deploy", "studio"}  # see the module docstring


def readme_rows() -> dict[str, str]:
    """First word(s) of each `facemath ...` example in the README table -> the example."""
    rows = {}
    for example in re.findall(r"^\| `facemath ([^`]+)`", (ROOT / "README.md").read_text(), re.M):
        words = example.split()
        key = " ".join(words[:2]) if words[0] == "data" else words[0]
        rows.setdefault(key, example.replace("\\|", "|"))
    return rows


@pytest.mark.slow
def test_every_readme_example_runs_on_the_shipped_examples(cli, tiny_export, tmp_path):
    rows = readme_rows()
    models = ["--models", str(tiny_export)]
    enc = tmp_path / "enc"
    photo = tmp_path / "astronaut.png"  # a real photo (scikit-image's): the example faces are synthetic
    Image.fromarray(data.astronaut()).save(photo)
    runs = {
        "project": ["project", str(EXAMPLES), "--loss-plugin", "perceptual", "--steps", "2", "-o", str(tmp_path / "p")],
        "complete": ["complete", str(EXAMPLES), "--mask", "center", "--blend", "poisson", "--steps", "2",
                     "--shard", "1/1", "-o", str(tmp_path / "c")],
        "latents": ["latents", "merge", str(tmp_path / "c"), "--out", str(tmp_path / "merged")],
        "align": ["align", str(photo), "--out", str(tmp_path / "al")],
        "edit": ["edit", str(photo), "--vectors", str(tmp_path / "p" / "latents.npz"), "--attr", "Smiling=1.5",
                 "--out", str(tmp_path / "smiling.png"), "--steps", "2"],
        "info": ["info"],
        "encode": ["encode", str(EXAMPLES), "--out", str(enc)],
        "render": ["render", str(enc / "latents.npz"), "--names", "000001,000002", "--out", str(tmp_path / "r")],
        "interpolate": ["interpolate", "000001", "000002", "000003", "--latents", str(enc / "latents.npz"),
                        "--frames", "3", "--out", str(tmp_path / "walk.gif")],
        "math": ["math", "mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)",
                 "--latents", str(enc / "latents.npz"), "--out", str(tmp_path / "m")],
        "analogy": ["analogy", "000001", "000002", "000003", "--latents", str(enc / "latents.npz"), "--size", "3",
                    "--out", str(tmp_path / "j.png")],
        "attributes": ["attributes", "--latents", str(enc / "latents.npz"), "--out", str(tmp_path / "a")],
        "compare": ["compare", "--data", str(EXAMPLES), "--steps", "2", "--trials", "1",
                    "--out", str(tmp_path / "rep")],
        "data synth": ["data", "synth", "--count", "8", "--out", str(tmp_path / "s"), "--size", "32"],
        "data info": ["data", "info", str(EXAMPLES)],
        "data grid": ["data", "grid", str(EXAMPLES), "--out", str(tmp_path / "grid.png")],
        "data pack": ["data", "pack", str(EXAMPLES), "--out", str(tmp_path / "shards")],
        "train": ["train", "vae", "--data", str(EXAMPLES), "--split", "all", "--out", str(tmp_path / "run"),
                  "--steps", "1", "--image-size", "32", "--z-dim", "8", "--ngf", "8", "--ndf", "8"],
        "plugins": ["plugins", "--kind", "loss"],
    }  # fmt: skip
    uses_models = {"project", "complete", "info", "encode", "render", "interpolate", "math", "analogy",
                   "attributes", "compare", "align", "edit"}  # fmt: skip
    assert set(rows) - {"--plugin", "--trace-plugins"} - NOT_HERE == set(runs), "a README example is not run here"
    for name, args in runs.items():
        result = cli(*args, *(models if name in uses_models else []))
        assert result.code == 0, (name, rows[name], result.stderr[-2000:])
