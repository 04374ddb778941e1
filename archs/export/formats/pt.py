"""``pt``: the state_dict as ``torch.save`` writes it."""

from __future__ import annotations

from .base import register_format, torch_bytes


@register_format("pt", "The state_dict as a .pt file: model.load_state_dict(torch.load(path)).")
def pt_files(spec, model, weights, stem) -> dict[str, bytes]:
    return {f"{stem}.pt": torch_bytes(weights)}
