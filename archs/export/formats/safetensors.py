"""``safetensors``: the state_dict as safetensors, with the spec in the file's metadata."""

from __future__ import annotations

from .base import register_format


@register_format("safetensors", "The state_dict as safetensors, with the spec in the file's metadata.")
def safetensors_files(spec, model, weights, stem) -> dict[str, bytes]:
    from safetensors.torch import save  # deferred: only this format needs safetensors

    return {f"{stem}.safetensors": save(weights, metadata={"format": "pt", "archs.spec": spec.to_json(indent=None)})}
