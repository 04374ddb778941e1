"""``code``: the network as a standalone .py needing only torch, and its weights beside it as .pt."""

from __future__ import annotations

from ..codegen import generate_code
from .base import register_format, torch_bytes


@register_format("code", "One .py file that needs only torch: the network as readable modules and load(), which "
                         "reads the weights (.pt) exported beside it.")
def code_files(spec, model, weights, stem) -> dict[str, bytes]:
    code = generate_code(spec, model, weights_file=f"{stem}.pt")
    return {f"{stem}.py": code.encode(), f"{stem}.pt": torch_bytes(weights)}
