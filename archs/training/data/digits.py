"""scikit-learn's 8x8 handwritten digits: shipped inside scikit-learn, so the offline default."""

from __future__ import annotations

from pathlib import Path

import torch

from archs.training.data.base import DatasetInfo, Raw


def load(root: Path, lenient: bool) -> Raw:
    """The 1,797 digits (0..16 grey levels scaled to 0..255), split 80/20, stratified, with a fixed seed."""
    from sklearn.datasets import load_digits  # heavy: scikit-learn
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    train, test = (torch.tensor(idx) for idx in train_test_split(range(len(labels)), test_size=0.2, random_state=0,
                                                                   stratify=bunch.target))
    classes = tuple(str(c) for c in bunch.target_names)
    return Raw(images[train], labels[train], images[test], labels[test], classes, "scikit-learn")


SOURCES = (
    DatasetInfo("digits", "Digits (scikit-learn, offline)", "sklearn", 1, 8, "none",
                "1,797 handwritten digits of 8x8 pixels bundled with scikit-learn; needs no network.",
                check=lambda root, lenient: "scikit-learn bundled digits", load=load),
)
