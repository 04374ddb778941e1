"""``python -m archs train``: one training run from the command line.

Bad input (an unknown preset, a broken spec file, a missing data set, a setting out of range)
prints one line on stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from archs.data import DATASETS, DataError
from archs.train import DEFAULT_DATA, DEFAULT_PRESET, ConfigError, TrainConfig

STATUS_EXIT = {"completed": 0, "stopped": 1, "diverged": 3, "failed": 4}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parsers object."""
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train", help="train a network briefly and report its accuracy",
        description="Train a preset or a spec file on a data set and report loss, accuracy and speed.",
    )
    parser.add_argument("spec", nargs="?", default=DEFAULT_PRESET,
                        help=f"preset name or spec JSON file (default {DEFAULT_PRESET})")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help=f"{'|'.join(DATASETS)} or an image folder (default {DEFAULT_DATA})")
    parser.add_argument("--data-root", default=None,
                        help="folder holding torchvision data sets (default $ARCHS_DATA_DIR or ./data)")
    parser.add_argument("--download", action="store_true", help="download a missing torchvision data set")
    parser.add_argument("--train-limit", type=int, default=None, help="train on a fixed random subset of N images")
    parser.add_argument("--test-limit", type=int, default=None, help="test on a fixed random subset of N images")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=defaults.optimizer)
    parser.add_argument("--schedule", choices=("constant", "cosine"), default=defaults.schedule)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--augment", choices=("auto", "none", "crop", "flip", "crop-flip"), default=defaults.augment)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=defaults.device)
    parser.add_argument("--amp", choices=("auto", "bf16", "off"), default=defaults.amp)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--save", action="store_true",
                        help="record the run under the runs folder ($ARCHS_RUNS_DIR or ./runs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=main, run=main)  # archs.cli dispatches on `run`
    return parser


def load_spec(text: str):
    """A preset name or the path of a spec JSON file; SpecError/ValueError on anything else."""
    from archs import PRESETS, NetSpec, SpecError

    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        try:
            return NetSpec.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"cannot read spec file {path}: {exc.strerror or exc}") from exc
    raise SpecError(f"unknown preset {text!r}; use one of {', '.join(PRESETS)} or a spec .json file")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from archs import build_model
    from archs.data import load_dataset
    from archs.runs import DataConfig, RunStore, execute_run
    from archs.train import train

    try:
        spec = load_spec(args.spec)
        config = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                             optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
                             augment=args.augment, device=args.device, amp=args.amp, seed=args.seed,
                             grad_every=0 if not args.save else TrainConfig().grad_every)
        from archs.train import resolve_device

        resolve_device(config.device)
        data_config = DataConfig(args.data, args.data_root, args.download, args.train_limit, args.test_limit)
        data_config.check()
        if args.save:
            run = RunStore().create(spec, config, data_config)
            status = execute_run(run, spec, config, data_config, stop_event=threading.Event())
            if status["status"] == "failed":
                raise DataError(status.get("error", "the run failed"))
            result = {**status.get("result", {}), "run_id": run.id}
        else:
            data = load_dataset(args.data, root=args.data_root, input_size=spec.input_size,
                                in_channels=spec.in_channels, download=args.download,
                                train_limit=args.train_limit, test_limit=args.test_limit)
            if spec.num_classes != data.num_classes:
                spec = dataclasses.replace(spec, num_classes=data.num_classes)
            import torch

            torch.manual_seed(config.seed)
            model = build_model(spec)
            log = None if args.json else _print_progress
            result = train(model, data, config, on_metrics=log).to_dict()
    except (DataError, ConfigError, ValueError) as exc:  # SpecError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"network": spec.name, "data": args.data, **result}
    if args.json:
        print(json.dumps(result))
    else:
        acc = result.get("test_accuracy")
        print(f"{result['status']}: {spec.name} on {args.data}, {result['steps']} steps on {result['device']}, "
              f"train loss {_fmt(result.get('train_loss'))}, test accuracy "
              f"{'-' if acc is None else f'{100 * acc:.2f} %'}, {result['images_per_second']:.0f} images/s")
    return STATUS_EXIT.get(result["status"], 1)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_progress(record: dict) -> None:
    if record["kind"] == "epoch":
        print(f"epoch {record['epoch']}: loss {record['loss']:.4f}, train acc {100 * record['train_accuracy']:.1f} %, "
              f"test acc {100 * record['test_accuracy']:.2f} %, {record['images_per_second']:.0f} images/s",
              flush=True)


def standalone(argv: list[str] | None = None) -> int:
    """Entry point usable before ``archs.cli`` wires the sub-command: ``python -m archs.train_cli``."""
    parser = argparse.ArgumentParser(prog="archs")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(standalone())
