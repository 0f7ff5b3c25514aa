#!/usr/bin/env bash
# Training images/s (plain, --mixed-precision, --jit) and projection image-steps/s on this machine's accelerator:
# one script to run when a GPU machine is available. It runs on CPU too, slowly; FACEMATH_GPU_SIZE=tiny makes it
# small enough to prove it works there.
#
#   bash bench/gpu.sh                          # the DCGAN of the CelebA recipe (64x64, width 64), batch 256
#   FACEMATH_GPU_SIZE=tiny bash bench/gpu.sh   # 32x32, width 8, batch 32: a CPU check of the script itself
#
# Training is timed from the chief's TensorBoard images_per_second between step 50 and the last step (so start-up,
# tracing and XLA compilation are left out); projection through the embedded backend (the shipped models, the
# contextual + perceptual losses) from step 3 on, as bench/serving.py does. Writes bench/results/gpu.json
# (gpu-tiny.json for the tiny size) with the device TensorFlow saw.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${FACEMATH_GPU_SIZE:-full}"
case "$SIZE" in
  full) IMAGE=64 WIDTH=64 ZDIM=100 BATCH=256 STEPS=300 FACES=4096 PBATCH=256 PSTEPS=40 OUT=bench/results/gpu.json ;;
  tiny) IMAGE=32 WIDTH=8 ZDIM=16 BATCH=32 STEPS=100 FACES=160 PBATCH=16 PSTEPS=8 OUT=bench/results/gpu-tiny.json ;;
  *) echo "error: FACEMATH_GPU_SIZE=$SIZE: choose full or tiny" >&2; exit 1 ;;
esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
facemath data synth --count "$FACES" --size "$IMAGE" --seed 0 --out "$WORK/faces" >/dev/null

for variant in plain mixed-precision jit; do
  extra=()
  [ "$variant" = plain ] || extra=("--$variant")
  echo "training: $variant" >&2
  facemath train gan --data "$WORK/faces" --out "$WORK/$variant" --steps "$STEPS" --batch-size "$BATCH" \
    --image-size "$IMAGE" --ngf "$WIDTH" --ndf "$WIDTH" --z-dim "$ZDIM" \
    --sample-every 100000 --checkpoint-every 100000 "${extra[@]}" >/dev/null
done

echo "projection" >&2
python - "$WORK" "$BATCH" "$STEPS" "$PBATCH" "$PSTEPS" "$SIZE" "$OUT" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "bench")
from common import print_table, write_json  # noqa: E402
from scale import seconds_since_start  # noqa: E402
from serving import timed_projection  # noqa: E402

work, batch, steps, pbatch, psteps, size, out = sys.argv[1:]
batch, steps, pbatch, psteps = int(batch), int(steps), int(pbatch), int(psteps)
from facemath_core.backends import EmbeddedBackend  # noqa: E402
from facemath_core.plugins import load_registry  # noqa: E402
from facemath_core.runtime import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402

device = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"]
rows = []
for variant in ("plain", "mixed-precision", "jit"):
    seconds = seconds_since_start(Path(work) / variant, batch)
    rows.append({"training": variant, "images/s": (steps - 50) * batch / (seconds[steps] - seconds[50])})
backend = EmbeddedBackend("exported_models")
rate, _, _ = timed_projection(backend, load_registry(), pbatch, psteps)
projection = [{"projection": "embedded, contextual + perceptual", "batch": pbatch, "image-steps/s": rate}]
print_table(f"training, GAN {size}, batch {batch}, steps 50-{steps}", rows)
print_table("projection", projection)
write_json(
    Path(out).stem,
    {"size": size, "device": device, "training": rows, "projection": projection, "training_steps": steps},
)
EOF
