"""Throughput of archs.training against the source article's training loop, and nearness to the
machine's limit.

Baseline (the article): torchvision MNIST through a DataLoader with per-sample PIL transforms
``Pad(4)``, ``RandomHorizontalFlip()``, ``RandomCrop(32)``, ``ToTensor()``; Adam at 1e-3; test on
``ToTensor()`` images. Ours: :func:`archs.training.loop.train` on the same model (``seed004-resnet``), the
same optimizer and the same augmentation (pad 4, crop, flip) done on whole tensor batches.
Each batch size runs the baseline then ours (alternating), one epoch each, and reports images/s
(training steps only, evaluation excluded, for both), test accuracy and the ratio.

Nearness to the limit: achieved training FLOP/s (3 x 2 x mult-adds per image x images/s) over the
FLOP/s of a 2048x2048 matmul measured in the same run, in bf16 (the brief's yardstick) and in float32
(this machine's real peak when it lacks native bf16).

    python benchmarks/bench_train.py --data-root DIR [--batch-sizes 32 128] [--train-limit N]

DIR holds MNIST in torchvision's layout (<DIR>/MNIST/raw). One epoch on 2 CPU cores takes minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import archs  # noqa: E402
from archs._compat import import_torchvision  # noqa: E402
from archs.training.config import TrainConfig  # noqa: E402
from archs.training.data import load_dataset  # noqa: E402
from archs.training.device import resolve_runtime  # noqa: E402
from archs.training.loop import train  # noqa: E402

PRESET = "seed004-resnet"


def matmul_flops(dtype: torch.dtype, device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n matmul: repeated for ``seconds`` (a single call where one takes longer:
    without native bf16 one 2048^2 bf16 matmul takes about a minute on a 2-core CPU)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a[:256, :256] @ b[:256, :256]  # warm-up on a small block
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count * 2 * n**3 / elapsed


def article_loop(root: str, batch_size: int, device: torch.device, train_limit: int | None, seed: int = 0) -> dict:
    """The source article's loop: DataLoader + per-sample PIL transforms, Adam 1e-3, one epoch."""
    tv = import_torchvision()
    T = tv.transforms
    torch.manual_seed(seed)
    train_tf = T.Compose([T.Pad(4), T.RandomHorizontalFlip(), T.RandomCrop(32), T.ToTensor()])
    train_set = tv.datasets.MNIST(root, train=True, transform=train_tf)
    test_set = tv.datasets.MNIST(root, train=False, transform=T.ToTensor())
    if train_limit:
        train_set = torch.utils.data.Subset(train_set, range(train_limit))
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)
    model = archs.build_model(archs.PRESETS[PRESET]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    images, seconds = 0, 0.0
    start = time.perf_counter()
    for x, y in loader:  # data loading counts: it is part of the article's training step
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        images += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=1000):
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    return {"images_per_second": images / seconds, "test_accuracy": correct / len(test_set), "seconds": seconds}


def our_loop(root: str, batch_size: int, device: str, train_limit: int | None, seed: int = 0) -> dict:
    spec = archs.PRESETS[PRESET]
    data = load_dataset("mnist", root=root, input_size=spec.input_size, in_channels=1, train_limit=train_limit)
    torch.manual_seed(seed)
    model = archs.build_model(spec)
    config = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, optimizer="adam", schedule="constant",
                         augment="crop-flip", grad_every=0, log_every=100, device=device, seed=seed)
    result = train(model, data, config)
    return {"images_per_second": result.images_per_second, "test_accuracy": result.test_accuracy,
            "seconds": result.seconds, "amp": result.amp}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--train-limit", type=int, default=None, help="fewer training images (smoke test)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    runtime = resolve_runtime(TrainConfig(device=args.device))
    device = runtime.device
    load_dataset("mnist", root=args.data_root, test_limit=1)  # extract the IDX files once, up front
    print(f"device {device}, torch threads {torch.get_num_threads()}, runtime {runtime.describe()}", flush=True)
    summary = archs.summarize(archs.PRESETS[PRESET])
    mult_adds = summary.mult_adds
    report = {"preset": PRESET, "mult_adds_per_image": mult_adds, "device": str(device), "runs": []}
    peaks = {"bf16": [matmul_flops(torch.bfloat16, device)], "fp32": [matmul_flops(torch.float32, device)]}
    for batch_size in args.batch_sizes:
        for name, loop in (("article", article_loop), ("archs", our_loop)):
            figures = loop(args.data_root, batch_size, device if name == "article" else args.device,
                           args.train_limit)
            figures.update(loop=name, batch_size=batch_size)
            report["runs"].append(figures)
            print(f"batch {batch_size:4d} {name:8s} {figures['images_per_second']:8.1f} images/s  "
                  f"test accuracy {100 * figures['test_accuracy']:.2f} %  ({figures['seconds']:.0f} s)", flush=True)
    peaks["fp32"].append(matmul_flops(torch.float32, device))
    report["matmul_flops"] = {k: max(v) for k, v in peaks.items()}
    print(f"2048^2 matmul: bf16 {report['matmul_flops']['bf16'] / 1e9:.1f} GFLOP/s, "
          f"fp32 {report['matmul_flops']['fp32'] / 1e9:.1f} GFLOP/s")
    for batch_size in args.batch_sizes:
        base, ours = (next(r for r in report["runs"] if r["loop"] == n and r["batch_size"] == batch_size)
                      for n in ("article", "archs"))
        achieved = 6 * mult_adds * ours["images_per_second"]
        row = {"batch_size": batch_size, "speedup": ours["images_per_second"] / base["images_per_second"],
               "achieved_flops": achieved,
               "fraction_of_bf16_matmul": achieved / report["matmul_flops"]["bf16"],
               "fraction_of_fp32_matmul": achieved / report["matmul_flops"]["fp32"]}
        report.setdefault("ratios", []).append(row)
        print(f"batch {batch_size:4d}: speedup {row['speedup']:.2f}x (target >= 2.5), "
              f"training {achieved / 1e9:.1f} GFLOP/s = {row['fraction_of_bf16_matmul']:.2f} of bf16 matmul "
              f"(target >= 0.5), {row['fraction_of_fp32_matmul']:.2f} of fp32 matmul; accuracy "
              f"{100 * base['test_accuracy']:.2f} % vs {100 * ours['test_accuracy']:.2f} % (target >= 98.5 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
