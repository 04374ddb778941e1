"""Time to accuracy: ``python -m archs speedrun`` against one epoch of the source article's loop, alternated
in one run.

Targets (issue 9): MNIST to at least 99.0 % test accuracy in at most a quarter of the time the article's
loop takes for one epoch; Fashion-MNIST to at least 91.0 % in at most half of it. The article's loop is
timed at batch 32 and 128 (the faster of the two is the yardstick: the harder target), as
``benchmarks/bench_train.py`` runs it: torchvision MNIST, a DataLoader with per-sample PIL transforms,
seed004-resnet, Adam 1e-3.

    python benchmarks/bench_speedrun.py --data-root DIR [--seeds 3] [--json FILE]

DIR holds MNIST and Fashion-MNIST in torchvision's layout. About ten minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import article_loop  # noqa: E402

from archs.training.data import load_dataset  # noqa: E402
from archs.training.device import resolve_device  # noqa: E402
from archs.training.speedrun import SPEEDRUNS, run_speedrun  # noqa: E402

SHARE = {"mnist": 0.25, "fashion-mnist": 0.5}  # of one article epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--article-batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = resolve_device("auto")
    for name in SPEEDRUNS:  # decompress the IDX files once, up front
        load_dataset(name, root=args.data_root, test_limit=1)
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    article, runs = [], {name: [] for name in SPEEDRUNS}
    batches = list(args.article_batches)
    for seed in range(args.seeds):  # alternate: an article epoch (while there are batch sizes left), then the runs
        if batches:
            batch = batches.pop(0)
            figures = article_loop(args.data_root, batch, device, None)
            article.append({"batch_size": batch, **figures})
            print(f"article loop, batch {batch}: one epoch in {figures['seconds']:.1f} s "
                  f"({figures['images_per_second']:.0f} images/s, test accuracy {100 * figures['test_accuracy']:.2f} %)",
                  flush=True)
        for name in SPEEDRUNS:
            figures = run_speedrun(name, args.data_root, seed=seed)
            runs[name].append(figures)
            print(f"speedrun {name:13s} seed {seed}: {100 * figures['test_accuracy']:.2f} % in {figures['seconds']:.1f} s "
                  f"({figures['steps']} steps, {figures['runtime']}, {figures['images_per_second']:.0f} images/s)",
                  flush=True)
    for batch in batches:  # more article batch sizes than seeds
        figures = article_loop(args.data_root, batch, device, None)
        article.append({"batch_size": batch, **figures})
        print(f"article loop, batch {batch}: one epoch in {figures['seconds']:.1f} s", flush=True)
    epoch = min(a["seconds"] for a in article)
    print(f"\narticle epoch (the faster of batch {', '.join(str(a['batch_size']) for a in article)}): {epoch:.1f} s")
    report = {"article": article, "article_epoch_seconds": epoch, "speedruns": runs, "verdicts": {}}
    for name, figures in runs.items():
        seconds = [f["seconds"] for f in figures]
        reached = sum(f["reached"] for f in figures)
        worst = max(seconds)
        budget = SHARE[name] * epoch
        report["verdicts"][name] = {"median_seconds": statistics.median(seconds), "worst_seconds": worst,
                                    "budget_seconds": budget, "reached": f"{reached}/{len(figures)}",
                                    "ratio_to_article_epoch": worst / epoch}
        print(f"{name:13s}: reached {SPEEDRUNS[name].target:.1%} in {reached}/{len(figures)} seeds; median "
              f"{statistics.median(seconds):.1f} s, worst {worst:.1f} s = {worst / epoch:.3f} of an article epoch "
              f"(target <= {SHARE[name]}: at most {budget:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
