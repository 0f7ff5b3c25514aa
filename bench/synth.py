"""How fast facemath renders labelled faces (target: >= 300 faces/s on one core at 64x64).

python bench/synth.py [--count 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import print_table, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    from PIL import Image

    from facemath_core.data.synth import FaceSampler, face_rng, render_face, to_uint8

    sampler = FaceSampler()
    rows = []
    for size in (32, 64, 128):
        count = args.count if size <= 64 else args.count // 4
        start = time.process_time()  # CPU time of this one process: one core's worth of work
        for i in range(count):
            render_face(sampler.sample(face_rng(0, i)), size)
        render = count / (time.process_time() - start)
        start = time.process_time()
        for i in range(count):
            buffer = io.BytesIO()
            Image.fromarray(to_uint8(render_face(sampler.sample(face_rng(0, i)), size))).save(
                buffer, format="PNG", compress_level=1
            )
        with_png = count / (time.process_time() - start)
        rows.append({"size": size, "faces": count, "render faces/s": render, "render+PNG faces/s": with_png})
    print_table("synthetic faces, one core (CPU time)", rows)
    write_json("synth", {"rows": rows, "target_faces_per_second_64": 300})


if __name__ == "__main__":
    main()
