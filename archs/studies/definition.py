"""What a study is, as plain data (:class:`StudyDefinition`), and how its trials become run requests.

A definition is stored with the study (JSON), so a driver that starts again reads exactly what was asked:

- ``sweep``: every combination of the listed values (``vary``, each ``{"path", "values"}``), ``seeds`` times;
- ``search``: ``trials`` trials sampled by Optuna from the ranges in ``vary`` (each ``{"path", "low", "high"}``,
  with ``"scale": "log"`` or ``"linear"`` or a ``"step"`` where given, or ``{"path", "values"}``: a categorical
  choice among those values), for one or several ``objectives``, each configuration once per seed (``seeds``);
- ``claim``: one of the seed articles' claims (``residual``, ``dense``, ``inception``): its networks, each
  with ``seeds`` seeds, on its fixed budget (:mod:`archs.studies.families`), at one precision and memory layout
  for every net (``amp``, ``channels_last``: the claim's, stored with the definition).

A trial is an assignment ``{path: value, ..., "train.seed": n}`` (a claim's trial names its net instead:
``{"family", "size", "train.seed"}``); :func:`trial_request` turns it into a run request, raising
:class:`~archs.SpecError` when the values make no valid network (the driver records the trial as infeasible).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from archs.fields import SpecError
from archs.studies.pareto import OBJECTIVES
from archs.studies.space import Domain, StudyError, Vary, apply, grid, listed, parse_path, parse_vary, trial_label
from archs.training.config import DataConfig, TrainConfig

__all__ = ["KINDS", "SAMPLERS", "PRUNERS", "StudyDefinition", "claim_of", "plan_trials", "trial_request"]

KINDS = ("sweep", "search", "claim")
SEARCH_VAL_SPLIT = 0.1  # a search's validation split where its data settings ask for none
PRUNE_EVALUATIONS = 8   # a search's runs evaluate about this often (where they set no eval_every), for its pruner
SAMPLERS = ("auto", "tpe", "nsga2", "random")
PRUNERS = ("median", "none")
MAX_SEEDS = 20
MAX_SEARCH_TRIALS = 1000


def _bad(path: str, problem: str) -> StudyError:
    return StudyError(f"{path}: {problem}", path)


@dataclass(frozen=True)
class StudyDefinition:
    kind: str
    name: str
    spec: dict | None = None                 # the base network (NetSpec.to_dict()); None for a claim
    train: dict = field(default_factory=dict)  # the base training settings (TrainConfig.to_dict())
    data: dict = field(default_factory=dict)   # DataConfig.to_dict()
    vary: tuple[dict, ...] = ()
    seeds: int = 1
    objectives: tuple[str, ...] = ("accuracy", "params")
    trials: int = 0                          # a search's number of trials
    parallel: int | None = None              # trials at once (default: the executor's concurrency)
    sampler: str = "auto"
    pruner: str = "median"
    claim: str | None = None
    steps: int | None = None                 # a claim's training steps per run (default: the claim's budget)
    run_kind: str = "train"                  # what each trial runs: "train", or "gradients" (norms at init)
    # a claim's one precision and memory layout for every net (TrainConfig's amp and channels_last, never
    # "auto"): the claim's Budget's unless given, recorded here so the stored study says what its runs used
    amp: str | None = None
    channels_last: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise _bad("kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200:
            raise _bad("name", "must be a name of 1 to 200 characters")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= MAX_SEEDS:
            raise _bad("seeds", f"must be a whole number from 1 to {MAX_SEEDS}, got {self.seeds!r}")
        if not self.objectives or any(o not in OBJECTIVES for o in self.objectives) or len(set(self.objectives)) \
                != len(self.objectives):
            raise _bad("objectives", f"must be distinct names among {', '.join(OBJECTIVES)}, got "
                                           f"{', '.join(map(str, self.objectives)) or 'none'}")
        if self.sampler not in SAMPLERS:
            raise _bad("sampler", f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise _bad("pruner", f"must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.parallel is not None and (isinstance(self.parallel, bool) or not isinstance(self.parallel, int)
                                          or not 1 <= self.parallel <= 64):
            raise _bad("parallel", f"must be a whole number from 1 to 64, got {self.parallel!r}")
        if self.kind == "search" and (isinstance(self.trials, bool) or not isinstance(self.trials, int)
                                      or not 1 <= self.trials <= MAX_SEARCH_TRIALS):
            raise _bad("trials", f"a search needs 1 to {MAX_SEARCH_TRIALS} trials, got {self.trials!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or not 1 <= self.steps <= 1_000_000):
            raise _bad("steps", f"must be a whole number of steps from 1, got {self.steps!r}")
        if self.run_kind not in ("train", "gradients"):
            raise _bad("run_kind", f"must be train or gradients, got {self.run_kind!r}")
        if self.kind == "claim":
            budget = claim_of(self).budget
            if self.amp is None:
                object.__setattr__(self, "amp", budget.amp)
            if self.channels_last is None:
                object.__setattr__(self, "channels_last", budget.channels_last)
            if self.amp not in ("off", "bf16"):
                raise _bad("amp", f"a claim trains every net at one fixed precision: off or bf16, got {self.amp!r}")
            if self.channels_last not in ("off", "on"):
                raise _bad("channels_last", "a claim trains every net in one fixed memory layout: off or on, got "
                                            f"{self.channels_last!r}")
        elif self.amp is not None or self.channels_last is not None:
            raise _bad("amp", "only a claim fixes its precision and layout here (a sweep or search sets them in "
                              "train)")
        elif self.spec is None or not self.vary:
            raise _bad("vary", f"a {self.kind} varies at least one field of a network")

    # ----- plain data
    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "vary": [dict(v) for v in self.vary], "objectives": list(self.objectives)}

    @classmethod
    def from_dict(cls, values: Any) -> StudyDefinition:
        if not isinstance(values, dict):
            raise _bad("study", "must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise _bad(unknown[0], "is not a setting of a study")
        values = dict(values)
        for name in ("vary", "objectives"):
            if name in values:
                if not isinstance(values[name], (list, tuple)):
                    raise _bad(name, "must be a list")
                values[name] = tuple(values[name])
        for name in ("train", "data"):
            if name in values and not isinstance(values[name], dict):
                raise _bad(name, "must be an object of settings")
        definition = cls(**values)
        definition.base()  # the network, settings and every varied field checked now, not at the first trial
        return definition

    # ----- what it varies
    def base(self):
        """(NetSpec, TrainConfig, DataConfig) the trials start from; raises SpecError/ConfigError."""
        from archs.spec import NetSpec

        train = TrainConfig.from_dict(self.train)
        data = DataConfig.from_dict(self.data)
        if self.kind == "search" and not data.val_split:  # selected on held-out images, never on the test set
            data = dataclasses.replace(data, val_split=SEARCH_VAL_SPLIT)
        if self.kind == "search" and not train.eval_every and train.max_steps:
            train = dataclasses.replace(train, eval_every=max(1, train.max_steps // PRUNE_EVALUATIONS))
        if self.kind == "claim":
            return None, train, data
        spec = NetSpec.from_dict(self.spec)
        if self.kind == "search":
            self.domains(spec, train)  # every domain made now: a search that cannot ask a trial is never stored
        else:
            self.varies(spec)
        return spec, train, data

    @property
    def selection_metric(self) -> str:
        return selection_metric(self.kind)

    def domains(self, spec, train: TrainConfig) -> list[Domain]:
        """A search's domains, one per varied field: a range's (``FIELD=LOW:HIGH``, or the field's own for a bare
        ``FIELD``), or a list's values as a categorical choice (``stages[*].blocks=1,2,3``)."""
        return [Domain(v.path, "categorical", choices=tuple(v.values), default=v.values[0]) if v.is_list
                else v.domain(spec, train) for v in self.varies(spec)]

    def varies(self, spec=None) -> list[Vary]:
        out = []
        for item in self.vary:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                raise _bad("vary", "each varied field is an object with a path")
            path = parse_path(item["path"], spec)
            if "values" in item:
                if not isinstance(item["values"], (list, tuple)):
                    raise _bad(path.text, "values must be a non-empty list")
                out.append(listed(path, item["values"], spec))     # each value checked now, not at its trial
            else:
                text = path.text if item.get("low") is None else f"{path.text}={item['low']}:{item['high']}"
                scale = item.get("step") if item.get("step") is not None else item.get("scale")
                if scale is not None and item.get("low") is not None:  # the range's scale: log, linear or a step
                    text += f":{scale}"
                out.append(parse_vary(text, spec))
        if len({v.path for v in out}) != len(out):
            raise _bad("vary", "a field is varied twice")
        if self.kind == "sweep" and any(not v.is_list for v in out):
            raise _bad(next(v.path for v in out if not v.is_list), "a sweep takes a list of values "
                                                                          "(FIELD=V1,V2,...), not a range")
        return out


def claim_of(definition: StudyDefinition):
    from archs.studies.families import CLAIMS

    if definition.claim not in CLAIMS:
        raise _bad("claim", f"must be one of {', '.join(CLAIMS)}, got {definition.claim!r}")
    return CLAIMS[definition.claim]


def plan_trials(definition: StudyDefinition) -> list[dict]:
    """The trials a sweep or a claim runs, in order (seed by seed); a search's are asked one by one instead."""
    if definition.kind == "search":
        return []
    if definition.kind == "claim":
        claim = claim_of(definition)
        return [{"family": net.family, "size": net.size, "train.seed": seed}
                for seed in range(definition.seeds) for net in claim.nets]
    spec, _, _ = definition.base()
    return grid(definition.varies(spec), seeds=definition.seeds)


def selection_metric(kind: str) -> str:
    """What a study of ``kind`` tells its sampler and pruner as accuracy: a search's, the accuracy on its validation
    split (its data's ``val_split``, or :data:`SEARCH_VAL_SPLIT` of the training images where that is 0), so the test
    set is reported, never optimised; a sweep or a claim selects nothing and reads the test set."""
    return "val_accuracy" if kind == "search" else "test_accuracy"


def trial_request(definition: StudyDefinition, params: dict, *, study_id: str, owner: str, owner_name: str | None):
    """The run request of one trial (the run's group is the study). Raises SpecError (or ConfigError) when the
    values make no valid network or settings: the trial is infeasible."""
    from archs.training.request import RunRequest, bound_quick_job

    if definition.kind == "claim":
        claim = claim_of(definition)
        try:
            net = claim.net(params["family"], params["size"])
        except KeyError:
            raise SpecError(f"claim {claim.name!r} has no net {params.get('family')} {params.get('size')}") from None
        seed = int(params.get("train.seed", 0))
        budget = dataclasses.replace(claim.budget, steps=definition.steps) if definition.steps else claim.budget
        data = DataConfig.from_dict(definition.data) if definition.data else budget.data_config()
        train = (TrainConfig.from_dict({**definition.train, "seed": seed}) if definition.train
                 else budget.train_config(seed))  # a page's own settings, else the claim's budget
        # the claim's one precision and layout, the same for every net (no per-network probe)
        train = dataclasses.replace(train, amp=definition.amp, channels_last=definition.channels_last)
        spec = _fitted(net.spec, data)
        return RunRequest(spec, train, data, label=f"{net.label} · seed {seed}", group=study_id, owner=owner,
                          owner_name=owner_name)
    spec, train, data = definition.base()
    spec, train = apply(spec, train, params)
    request = RunRequest(spec, train, data, kind=definition.run_kind, label=trial_label(params), group=study_id,
                         owner=owner, owner_name=owner_name)
    # a measurement (the depth sweep's gradients) is a quick job: checked against the memory budget at its batch
    # (over it: a SpecError, so the trial is infeasible) and given the quick lane's time limit and memory cap
    return request if request.kind == "train" else bound_quick_job(request)


def _fitted(spec, data: DataConfig):
    """A claim's net (made for 1 x 28 x 28) with the data set's channels; its images are resized to the net's size
    when the run loads them, and the number of classes follows the data, so every net keeps the size it was
    measured at."""
    from archs.training.data import dataset_info

    channels = dataset_info(data.name).channels or spec.in_channels
    return spec if channels == spec.in_channels else dataclasses.replace(spec, in_channels=channels)
