"""``python -m archs export``: the command line of the exporter (registered by archs.cli, which hands it the way to
read a spec or a run: the exporter itself imports nothing above the network code, so a worker can export)."""

from __future__ import annotations

import sys

from .formats import FORMATS, export
from .names import escaped


def add_parser(sub, resolve) -> None:
    """``python -m archs export SPEC_OR_RUN --format … --out DIR`` (registered by archs.cli). ``resolve(text)``
    reads a preset, spec file or run id as a source (``.spec``, ``.weights()``, ``.run_id``), raising ValueError."""
    p = sub.add_parser("export", help="write a network as PyTorch code, ONNX, .pt or safetensors",
                       description="Export a preset, a JSON spec file or a stored run (with its trained weights). "
                                   "Every format also writes the spec as <name>.json.")
    p.add_argument("spec", metavar="SPEC_OR_RUN", help="a preset name, a JSON spec file, or a run id")
    p.add_argument("--format", required=True, choices=list(FORMATS),
                   help="code: a .py needing only torch, plus its weights as .pt; onnx; pt; safetensors; or any other "
                        "format registered in archs/export/formats/")
    p.add_argument("--out", required=True, help="folder to write to (created if missing)")
    p.add_argument("--name", help="file name (default: the network's name)")
    p.set_defaults(run=lambda args: _cmd_export(args, resolve))


def _cmd_export(args, resolve) -> int:
    try:
        source = resolve(args.spec)
        paths = export(source.spec, args.format, args.out, state_dict=source.weights(), name=args.name)
    except ValueError as error:  # SpecError, SourceError, ExportError: the message says what is wrong
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write to {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    weights = f"trained weights of run {source.run_id}" if source.run_id else "weights initialised from seed 0"
    print(f"{escaped(source.spec.name)} ({weights}):")
    for path in paths:
        print(f"  {path}")
    return 0
