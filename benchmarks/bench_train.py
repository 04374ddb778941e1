"""Training speed, three ways, in one run (everything alternated, so a busy machine hurts all sides alike):

1. **Layout and precision.** For presets of four families (residual, dense, Inception, plain) at 28x28, one
   channel: the images/s of every candidate the probe considers on this machine (contiguous/channels_last
   x float32/bf16 where native), timed here over many steps, and which one ``auto`` chose with its own
   short probe (fresh cache). Target: the choice within 5 % of the best.
2. **Against the source article's loop** on seed004-resnet, at batch 32 and 128: the article's loop
   (torchvision MNIST through a DataLoader with per-sample PIL transforms Pad(4), RandomHorizontalFlip,
   RandomCrop(32), ToTensor; Adam 1e-3; one epoch) against ``archs.training.loop.train`` with the same
   model, optimizer and augmentation (done on whole tensor batches) and ``auto`` layout and precision.
   Target: at least 1.2x its images/s.
3. **Nearness to the machine's limit.** Achieved training FLOP/s (3 x 2 x mult-adds per image x images/s)
   over a 2048x2048 float32 matmul's FLOP/s measured in the same run (bf16's too, where native). Target:
   at least 0.6 of the float32 matmul.

    python benchmarks/bench_train.py --data-root DIR [--batch-sizes 32 128] [--train-limit N] [--json FILE]

DIR holds MNIST in torchvision's layout (<DIR>/MNIST/raw). Part 2 trains one MNIST epoch per loop and
batch size: minutes on a CPU. ``--train-limit`` shortens it for a smoke test.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ARCHS_CACHE_DIR", tempfile.mkdtemp(prefix="bench-train-cache-"))  # auto decides afresh

import archs  # noqa: E402
from archs._compat import import_torchvision  # noqa: E402
from archs.training import tuning  # noqa: E402
from archs.training.config import TrainConfig  # noqa: E402
from archs.training.data import load_dataset  # noqa: E402
from archs.training.device import native_bf16, resolve_device  # noqa: E402
from archs.training.loop import make_optimizer, train  # noqa: E402

PRESET = "seed004-resnet"
FAMILIES = {"residual": "seed004-resnet", "dense": "d2l-densenet", "inception": "seed002-inception",
            "plain": "cifar-plain20"}


def matmul_flops(dtype: torch.dtype, device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n matmul, repeated for ``seconds``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count * 2 * n**3 / elapsed


def family_spec(name: str):
    """The preset at 28x28, one channel, 10 classes (the d2l DenseNet is its own 96x96 net: kept at 96)."""
    spec = archs.PRESETS[name]
    size = spec.input_size if name == "d2l-densenet" else 28
    return replace(spec, in_channels=1, input_size=size, num_classes=10)


# ---------------------------------------------------------------------------------------------- part 1
def candidates_and_choice(batch: int, rounds: int, steps: int) -> list[dict]:
    device = resolve_device("auto")
    rows = []
    for family, name in FAMILIES.items():
        spec = family_spec(name)
        torch.manual_seed(0)
        model = archs.build_model(spec).to(device)
        config = TrainConfig(batch_size=batch)
        shape = (batch, 1, spec.input_size, spec.input_size)
        factory = lambda params: make_optimizer(params, config)  # noqa: E731
        choices = tuning.candidates(config, device)
        seconds: dict[str, list[float]] = {c.name: [] for c in choices}
        x, y = tuning._sample(shape, 10, device)
        for _ in range(rounds):  # alternated: every candidate once per round
            for choice in choices:
                seconds[choice.name].append(tuning._timed_steps(copy.deepcopy(model), factory, choice, x, y, steps,
                                                                device)[1])
        ips = {n: batch / statistics.median(s) for n, s in seconds.items()}
        runtime, report = tuning.choose(config, model, device, shape, 10, 100_000, factory)
        best = max(ips, key=ips.get)
        rows.append({"family": family, "preset": name, "input": spec.input_size, "batch": batch,
                     "images_per_second": ips, "best": best, "auto": report["chosen"], "auto_how": report["how"],
                     "auto_over_best": ips[report["chosen"]] / ips[best],
                     "probe_images_per_second": report.get("images_per_second"),
                     "probe_seconds": report.get("probe_seconds")})
        cells = "  ".join(f"{n}: {v:7.1f}" for n, v in ips.items())
        print(f"{family:9s} {name:18s} batch {batch}: {cells}  | auto chose {report['chosen']} "
              f"({report['how']}, {report.get('probe_seconds', 0):.1f} s): {100 * rows[-1]['auto_over_best']:.1f} % "
              f"of the best ({best}) (target >= 95 %)", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------- part 2
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
    images = 0
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


def our_loop(root: str, batch_size: int, train_limit: int | None, seed: int = 0) -> dict:
    spec = archs.PRESETS[PRESET]
    data = load_dataset("mnist", root=root, input_size=spec.input_size, in_channels=1, train_limit=train_limit)
    torch.manual_seed(seed)
    model = archs.build_model(spec)
    config = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, optimizer="adam", schedule="constant",
                         augment="crop-flip", grad_every=0, log_every=100, seed=seed)
    records: list[dict] = []
    result = train(model, data, config, on_metrics=records.append)
    return {"images_per_second": result.images_per_second, "test_accuracy": result.test_accuracy,
            "seconds": result.seconds, "runtime": records[0]["runtime"]["chosen"], "amp": result.amp}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--family-batch", type=int, default=128, help="batch size of part 1")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of part 1")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per candidate and round in part 1")
    parser.add_argument("--train-limit", type=int, default=None, help="fewer training images in part 2 (smoke test)")
    parser.add_argument("--skip-article", action="store_true", help="part 1 only")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    device = resolve_device("auto")
    print(f"device {device}, torch threads {torch.get_num_threads()}, native bf16 {native_bf16(device)}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    report: dict = {"device": str(device), "threads": torch.get_num_threads(), "native_bf16": native_bf16(device)}
    peaks = {"fp32": [matmul_flops(torch.float32, device)]}
    if native_bf16(device):
        peaks["bf16"] = [matmul_flops(torch.bfloat16, device)]

    print("\n1. every candidate against auto's choice")
    report["families"] = candidates_and_choice(args.family_batch, args.rounds, args.steps)

    if not args.skip_article:
        print("\n2. against the article's loop, seed004-resnet, one MNIST epoch each, alternated")
        load_dataset("mnist", root=args.data_root, test_limit=1)  # extract the IDX files once, up front
        report["runs"] = []
        for batch_size in args.batch_sizes:
            for name, loop in (("article", lambda b: article_loop(args.data_root, b, device, args.train_limit)),
                               ("archs", lambda b: our_loop(args.data_root, b, args.train_limit))):
                figures = loop(batch_size)
                figures.update(loop=name, batch_size=batch_size)
                report["runs"].append(figures)
                print(f"batch {batch_size:4d} {name:8s} {figures['images_per_second']:8.1f} images/s  test accuracy "
                      f"{100 * figures['test_accuracy']:.2f} %  ({figures['seconds']:.0f} s)"
                      + (f"  auto: {figures['runtime']}" if "runtime" in figures else ""), flush=True)
    peaks["fp32"].append(matmul_flops(torch.float32, device))
    if "bf16" in peaks:
        peaks["bf16"].append(matmul_flops(torch.bfloat16, device))
    report["matmul_flops"] = {k: max(v) for k, v in peaks.items()}
    print("\n3. nearness to the limit: 2048^2 matmul "
          + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in report["matmul_flops"].items()))
    if not args.skip_article:
        mult_adds = archs.summarize(archs.PRESETS[PRESET]).mult_adds
        report["ratios"] = []
        for batch_size in args.batch_sizes:
            base, ours = (next(r for r in report["runs"] if r["loop"] == n and r["batch_size"] == batch_size)
                          for n in ("article", "archs"))
            achieved = 6 * mult_adds * ours["images_per_second"]
            row = {"batch_size": batch_size, "speedup": ours["images_per_second"] / base["images_per_second"],
                   "achieved_flops": achieved,
                   **{f"fraction_of_{k}_matmul": achieved / v for k, v in report["matmul_flops"].items()}}
            report["ratios"].append(row)
            print(f"batch {batch_size:4d}: {row['speedup']:.2f}x the article's images/s (target >= 1.2); training "
                  f"{achieved / 1e9:.1f} GFLOP/s = {row['fraction_of_fp32_matmul']:.2f} of the fp32 matmul (target "
                  f">= 0.6)" + (f", {row['fraction_of_bf16_matmul']:.2f} of the bf16 one" if "bf16" in peaks else "")
                  + f"; test accuracy {100 * base['test_accuracy']:.2f} % vs {100 * ours['test_accuracy']:.2f} %")
    worst = min(r["auto_over_best"] for r in report["families"])
    print(f"\nauto's choice: worst {100 * worst:.1f} % of the best candidate (target >= 95 %)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
