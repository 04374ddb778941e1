"""``python -m archs``: list presets, summarise a network, measure its gradients and cost, export it, train
it, list runs."""

from __future__ import annotations

import argparse
import json
import sys

from .fields import SpecError


def _input_size(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SpecError(f"--input: expected C,H,W (e.g. 3,224,224), got {text!r}") from None
    if len(dims) not in (2, 3) or min(dims) < 1 or max(dims) > 4096:
        raise SpecError(f"--input: expected C,H,W with each between 1 and 4096, got {text!r}")
    return dims


def _cmd_presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS  # heavy (torch), as in every command below: `archs runs` imports none of it

    rows = [{"name": name, "params": spec.num_params(), "input": [spec.in_channels, spec.input_size,
                                                                  spec.input_size], "classes": spec.num_classes}
            for name, spec in PRESETS.items()]
    if args.json:
        print(json.dumps({"presets": rows}))
    else:
        for row in rows:
            c, h, w = row["input"]
            print(f"{row['name']:<20} {row['params']:>12,} params  input {c}x{h}x{w}  {row['classes']} classes")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from .inspect import summarize
    from .presets import load_spec
    from .receptive import receptive_fields

    summary = summarize(load_spec(args.spec), _input_size(args.input), batch_size=args.batch)
    fields = {r.name: r for r in receptive_fields(summary.spec, summary.input_shape[1:]).layers}
    if args.json:
        data = summary.to_dict()
        for row in data["stages"] + data.get("layers", []):
            row["receptive_field"] = list(fields[row["name"]].size)
        print(json.dumps(data))
        return 0
    print(f"{'layer':<52} {'type':<16} {'output':<20} {'params':>12} {'mult-adds':>15} {'field':>7}")
    for row in summary.rows:
        name = "  " * (row.depth - 1) + row.name.rsplit(".", 1)[-1]
        print(f"{name:<52} {row.type:<16} {'x'.join(map(str, row.output_shape)):<20} {row.params:>12,}"
              f" {row.mult_adds:>15,} {fields[row.name].size[0]:>7}")
    print(f"\ntotal parameters {summary.total_params:,} (trainable {summary.trainable_params:,})")
    print(f"mult-adds {summary.mult_adds:,}; activations {summary.activation_bytes / 1e6:.1f} MB "
          f"for a batch of {summary.batch_size}")
    return 0


def _cmd_gradients(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .inspect import gradient_profile
    from .presets import load_spec

    spec = load_spec(args.spec)
    dims = _input_size(args.input)
    if dims is not None:
        c, h, w = dims if len(dims) == 3 else (spec.in_channels, *dims)
        if h != w:
            raise SpecError("--input: gradients are measured on square inputs; give H equal to W")
        spec = replace(spec, in_channels=c, input_size=h)
        spec.plan()
    profile = gradient_profile(spec, batch_size=args.batch, seed=args.seed)
    if args.json:
        print(json.dumps(profile.to_dict()))
        return 0
    for r in profile.layers:
        print(f"{r.depth:>4} {r.name:<48} {r.type:<8} {r.grad_norm:.4e}")
    print(f"\nloss {profile.loss:.4f}; first/last conv gradient-norm ratio {profile.first_last_ratio():.4g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    # heavy (torch): the whole parser is built only for commands other than `runs` (see _light_parser)
    from .cost import add_parser as add_cost_parser
    from .export.cli import add_parser as add_export_parser
    from .sources import resolve
    from .studies.cli import add_parser as add_study_parser
    from .training.cli import add_parsers as add_training_parsers

    parser = argparse.ArgumentParser(prog="python -m archs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the preset networks with their parameter counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_cmd_presets)
    for name, run, help_text in (("summary", _cmd_summary, "layer table and totals (torchinfo)"),
                                 ("gradients", _cmd_gradients, "gradient norm per layer at initialisation")):
        # `grads`: the command's first name, kept for scripts
        p = sub.add_parser(name, help=help_text, aliases=["grads"] if name == "gradients" else [])
        p.add_argument("spec", help="a preset name or a JSON spec file")
        p.add_argument("--input", help="input size as C,H,W (default: the spec's)")
        p.add_argument("--batch", type=int, default=1 if name == "summary" else 16)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "gradients":
            p.add_argument("--seed", type=int, default=0)
        p.set_defaults(run=run)
    add_training_parsers(sub)
    add_export_parser(sub, resolve)
    add_cost_parser(sub)
    add_study_parser(sub)
    return parser


def _light_parser(command: str) -> argparse.ArgumentParser | None:
    """The parser of a command that must start without torch (listing the run store), or None."""
    if command != "runs":
        return None
    from .training.cli import add_runs_parser

    parser = argparse.ArgumentParser(prog="python -m archs", description=__doc__)
    add_runs_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _light_parser(argv[0]) if argv else None
    args = (parser or build_parser()).parse_args(argv)
    if getattr(args, "batch", 1) < 1:
        print("error: --batch: must be >= 1", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
