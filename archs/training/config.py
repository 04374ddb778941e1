"""Settings of a run (training and data) and the statuses a run goes through.

Both settings classes declare their fields with :func:`archs.fields.param`, as the network specs do:
the dashboard draws their controls from that metadata, and :func:`archs.fields.check_fields` checks
them, in one place, with messages that name the field (``batch_size: must be >= 1, got 0``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from archs.fields import SpecError, check_fields, param, settings_from_dict

__all__ = [
    "ACTIVE_STATUSES", "AUGMENTATIONS", "ConfigError", "DEFAULT_DATA", "DEFAULT_PRESET", "DataConfig",
    "FINAL_STATUSES", "MAX_EVAL_RECORDS", "MAX_GRAD_RECORDS", "MAX_STEP_RECORDS", "TrainConfig", "record_every",
]

DEFAULT_PRESET = "seed002-inception"  # small (97k parameters, no BatchNorm): a few seconds on digits
DEFAULT_DATA = "digits"  # offline: bundled with scikit-learn
AUGMENTATIONS = ("none", "crop", "flip", "crop-flip")

# queued: waiting for a worker; running: a worker owns it. The rest are final. A run whose worker died
# without recording an end reads as "failed" (local worker) or "interrupted" (the process that relayed
# a remote run's records went away), derived when reading: see archs.training.store.Run.status.
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "stopped", "diverged", "failed", "interrupted")

# Metric records per run are bounded whatever is asked: log_every, grad_every and eval_every are raised, when a
# run is long, to what keeps at most this many records of each kind (a run of 100,000 steps at log_every=1 records
# every 50th step). Step records are small (~200 bytes); a gradient record holds a norm per layer (a few kB to
# ~100 kB for a deep network), so far fewer of those. The run store also refuses records past MAX_RECORDS_PER_RUN.
MAX_STEP_RECORDS = 2000
MAX_GRAD_RECORDS = 200
MAX_EVAL_RECORDS = 500


def record_every(asked: int, total_steps: int, most: int) -> int:
    """Steps between records of one kind: ``asked`` (0: never), raised so that ``total_steps`` give at most
    ``most`` records."""
    if asked <= 0:
        return 0
    return max(asked, -(-max(total_steps, 1) // most))


class ConfigError(SpecError):
    """A training or data setting is invalid; the message and ``path`` name the field."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. The defaults are the default run (``DEFAULT_PRESET`` on
    ``DEFAULT_DATA``): five epochs of Adam at batch 64 with a cosine schedule."""

    epochs: int = param(5, "Passes over the training set.", range=(1, 1000))
    max_steps: int | None = param(None, "Stop after this many optimizer steps (empty: no limit).",
                                  range=(1, None), kind="int", optional=True)
    batch_size: int = param(64, "Images per optimizer step.", range=(1, 65536))
    lr: float = param(1e-3, "Peak learning rate.", range=(0.0, 10.0))
    optimizer: str = param("adam", "Optimizer.", choices=("adam", "sgd"))
    weight_decay: float = param(0.0, "L2 weight decay.", range=(0.0, 1.0))
    momentum: float = param(0.9, "SGD momentum (ignored by Adam).", range=(0.0, 0.999))
    schedule: str = param("cosine", "Learning-rate schedule after warm-up (onecycle: a straight line down to 0).",
                          choices=("constant", "cosine", "onecycle"))
    warmup_steps: int = param(0, "Linear learning-rate warm-up steps.", range=(0, None))
    warmup_fraction: float = param(0.0, "Linear warm-up over this fraction of the run's steps (when warm-up "
                                        "steps is 0).", range=(0.0, 0.5))
    decay_all: bool = param(True, "Weight decay on every parameter (off: only on conv and linear weights, not on "
                                  "norm layers and biases).")
    device: str = param("auto", "Where to train (auto: cuda, then mps, then cpu).",
                        choices=("auto", "cpu", "cuda", "mps"))
    augment: str = param("auto", "Batch augmentation (auto: the data set's usual one).",
                         choices=("auto",) + AUGMENTATIONS)
    log_every: int = param(20, "Steps between metric records (raised on long runs: at most 2,000 per run).",
                           range=(1, None))
    grad_every: int = param(50, "Steps between gradient-norm records (0: never; raised on long runs: at most 200 "
                                "per run).", range=(0, None))
    eval_every: int = param(0, "Steps between test evaluations (0: once per epoch and at the end; four times "
                                  "per epoch with a target accuracy; raised on long runs: at most 500 per run).",
                            range=(0, None))
    target_accuracy: float | None = param(None, "End the run as completed the first time the test accuracy "
                                                "reaches this (0..1; empty: train to the end).",
                                          range=(0.0, 1.0), kind="float", optional=True)
    eval_from: float = param(0.0, "Periodic evaluations start after this fraction of the run (a target cannot "
                                  "be reached earlier anyway; each evaluation costs time).", range=(0.0, 1.0))
    label_smoothing: float = param(0.0, "Label smoothing of the cross-entropy loss.", range=(0.0, 0.5))
    seed: int = param(0, "Random seed for initialisation, order and augmentation.", range=(0, None))
    amp: str = param("auto", "bf16 autocast (auto: measured by a short probe, where the device computes bf16 "
                             "natively).", choices=("auto", "bf16", "off"))
    channels_last: str = param("auto", "Channels-last memory format (auto: measured by a short probe).",
                               choices=("auto", "on", "off"))
    compile: str = param("auto", "torch.compile (auto: on CUDA, when the probe shows it pays back its compile "
                                 "time within the run).", choices=("auto", "on", "off"))

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        return settings_from_dict(cls, values, "training", ConfigError)


@dataclass(frozen=True)
class DataConfig:
    """Which data set a run trains on. Image size and channels follow the network's spec.

    A request from the dashboard holds no server path: an image folder is ``folder:<relative/path>``, resolved
    inside ``$ARCHS_DATA_DIR`` wherever it is checked or loaded (a name that leads out of it is refused with
    a DataError there, so a stored request is checked as well), and ``root`` is empty (the data folder).
    Whether the data can be read is :func:`archs.training.data.check_data`'s to say.
    """

    name: str = param(DEFAULT_DATA, "A data set of archs.training.data.DATASETS, folder:<path> (an image folder "
                                    "inside $ARCHS_DATA_DIR, named relative to it: how the dashboard names one), or "
                                    "the path of an image folder (the command line).", max_length=4096)
    root: str | None = param(None, "Folder holding torchvision data sets (empty: $ARCHS_DATA_DIR or ./data).",
                             kind="str", optional=True, max_length=4096)
    download: bool = param(False, "Download a missing torchvision data set (needs the internet).")
    train_limit: int | None = param(None, "Train on a fixed random subset of this many images.",
                                    range=(1, None), kind="int", optional=True)
    test_limit: int | None = param(None, "Test on a fixed random subset of this many images.",
                                   range=(1, None), kind="int", optional=True)
    val_split: float = param(0.0, "Hold out this fraction of the training images as a validation set (the same "
                                  "images for every run of this data: stratified by class, seed 0), evaluated "
                                  "beside the test set: a search selects and prunes on it, never on the test set.",
                             range=(0.0, 0.5), step=0.05, added=True)

    def __post_init__(self) -> None:
        _check(self)
        if not self.name.strip():
            raise ConfigError("name: name a data set or an image folder", "name")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DataConfig:
        return settings_from_dict(cls, values, "data", ConfigError)


def _check(settings) -> None:
    try:
        check_fields(settings)
    except SpecError as error:
        raise ConfigError(str(error), error.path) from None
