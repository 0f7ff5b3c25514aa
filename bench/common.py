"""Shared by the benchmarks: the machine's measured matmul peak, model FLOP counts, tables and JSON output.

Each benchmark prints a table and writes JSON beside itself (bench/results/NAME.json). Ratios (share of peak,
remote vs embedded) are measured within one run, because this machine is shared and noisy.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def matmul_peak_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    """Float32 GFLOP/s of a large TF matmul on this machine, now: the practical peak to compare against."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        matmul(a, b).numpy()
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def forward_macs(model) -> int:
    """Multiply-accumulates of one forward pass for one example: dense and (transposed) convolution layers."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        inner = getattr(layer, "layer", layer)  # SpectralNormalization wraps a layer
        if isinstance(inner, keras.layers.Dense):
            total += int(np.prod(inner.kernel.shape))
        elif isinstance(inner, keras.layers.Conv2DTranspose):
            h, w = inner.input.shape[1:3] if hasattr(inner, "input") else (None, None)
            kh, kw, cout, cin = inner.kernel.shape
            total += int(h * w * kh * kw * cin * cout)
        elif isinstance(inner, keras.layers.Conv2D):
            h, w = inner.output.shape[1:3]
            kh, kw, cin, cout = inner.kernel.shape
            total += int(h * w * kh * kw * cin * cout)
    return total


def print_table(title: str, rows: list[dict]) -> None:
    from facemath_core.base.tables import markdown_table

    if rows:
        print(f"\n{title}\n{markdown_table(rows, cell=_fmt, align=True)}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return "" if value is None else str(value)


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"\nwrote {path}")
    return path
