"""summarize() against a bare torchinfo.summary of the same module, in one run.

Targets (issue 2): first call at most 1.1x the bare torchinfo call; the same spec again at most 10 ms.
Calls alternate between the two so that machine noise hits both alike; medians are reported.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torchinfo  # noqa: E402

from archs import PRESETS, build_model, summarize  # noqa: E402
from archs.inspect import _summarize  # noqa: E402

COLUMNS = ("output_size", "num_params", "mult_adds", "trainable")


def main(rounds: int = 7) -> int:
    torch.set_num_threads(2)
    spec, shape = PRESETS["resnet18"], (3, 224, 224)
    model = build_model(spec)
    torchinfo.summary(model, input_size=(1, *shape), verbose=0)  # warm up kernels and imports for both
    summarize(spec, shape)
    ours, bare, cached = [], [], []
    for _ in range(rounds):
        _summarize.cache_clear()
        t = time.perf_counter()
        summarize(spec, shape)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        summarize(spec, shape)
        cached.append(time.perf_counter() - t)
        t = time.perf_counter()
        torchinfo.summary(model, input_size=(1, *shape), depth=1000, col_names=COLUMNS, verbose=0)
        bare.append(time.perf_counter() - t)
    first, base, again = statistics.median(ours), statistics.median(bare), statistics.median(cached)
    print(f"resnet18 3x224x224, {rounds} alternating rounds, medians")
    print(f"  summarize, first call (builds the model): {first * 1000:8.1f} ms")
    print(f"  bare torchinfo.summary, prebuilt module:  {base * 1000:8.1f} ms")
    print(f"  ratio first call / bare:                   {first / base:8.3f}  (target <= 1.1)")
    print(f"  summarize, same spec again (cache):       {again * 1000:8.3f} ms (target <= 10 ms)")
    return 0 if first / base <= 1.1 and again <= 0.010 else 1


if __name__ == "__main__":
    sys.exit(main())
