"""Cached calls into ``archs``, keyed by spec: a rerun with an unchanged network does no torch work.

Specs are frozen dataclasses; Streamlit hashes them by their compact JSON. What runs a network (gradients and
activation health at initialisation, a stored run's activation health, measured cost, export) is not computed
here: these functions describe it as a quick job (:mod:`ui.jobs`) that a worker carries out.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import archs
from archs import CostReport, GradientNorms, NetSpec, ReceptiveFields, Summary, sources
from archs.health import ActivationHealth
from archs.training.config import DataConfig, TrainConfig
from archs.training.request import EXPORT_FOLDER, RunRequest
from archs.training.store import RunError
from archs.training.store.files import read_regular
from archs.training.stored import spec_of

from . import fmt, jobs
from .jobs import Job

HASH = {NetSpec: lambda spec: spec.to_json(indent=None)}
# forward + backward on a small CPU runs ~1.5e9 mult-adds/s; a gradient measurement needs ~3 passes' worth
MULT_ADDS_PER_SECOND = 1.5e9


@st.cache_resource(max_entries=64, hash_funcs=HASH, show_spinner=False)
def summary(spec: NetSpec) -> Summary:
    """torchinfo summary for one image at the spec's input size (mult-adds and memory scale with batch)."""
    return archs.summarize(spec)


@st.cache_data(max_entries=64, hash_funcs=HASH, show_spinner=False)
def layer_table(spec: NetSpec) -> pd.DataFrame:
    rows = summary(spec).rows
    fields = {r.name: r for r in receptive(spec).layers}
    return pd.DataFrame({
        "depth": [r.depth for r in rows],
        "stage": [r.stage for r in rows],
        "layer": [r.name for r in rows],
        "type": [r.type for r in rows],
        "output": [fmt.shape(r.output_shape[1:]) for r in rows],
        "receptive field": [field_text(fields[r.name].size) if r.name in fields else "" for r in rows],
        "jump": [field_text(fields[r.name].jump) if r.name in fields and fields[r.name].output_size else ""
                 for r in rows],
        "params": [r.params for r in rows],
        "mult-adds": [r.mult_adds for r in rows],
        "trainable": [r.trainable for r in rows],
        "leaf": [r.is_leaf for r in rows],
    })


@st.cache_data(max_entries=64, hash_funcs=HASH, show_spinner=False)
def stage_table(spec: NetSpec) -> pd.DataFrame:
    stages = summary(spec).stages
    return pd.DataFrame({
        "part": [s.name for s in stages],
        "what": [s.label for s in stages],
        "output": [fmt.shape(s.output_shape[1:]) for s in stages],
        "params": [s.params for s in stages],
        "mult-adds": [s.mult_adds for s in stages],
    })


def inspect_job(spec: NetSpec, batch_size: int, seed: int) -> Job:
    """Gradients and activation health at initialisation of ``spec`` and of its plain twin, measured by a worker:
    its result is ``{"network": (GradientNorms, ActivationHealth), "twin": the same or None}``."""
    def read(result: dict, run_id: str) -> dict:
        return {name: (GradientNorms.from_dict(part["gradients"]), ActivationHealth.from_dict(part["health"]))
                if part else None for name, part in (("network", result["network"]), ("twin", result.get("twin")))}

    return Job("inspect", (spec, int(batch_size), int(seed)),
               lambda owner, name: RunRequest(spec, TrainConfig(batch_size=batch_size, seed=seed, device="cpu"),
                                              kind="inspect", label=f"gradients of {spec.name}", owner=owner,
                                              owner_name=name),
               read, f"Measuring {fmt.plain(spec.name, 60)} at batch {batch_size}")


def gradient_seconds(spec: NetSpec, batch_size: int) -> float:
    """Rough time to measure the gradients of ``spec`` at a batch size on this kind of machine."""
    return 3 * summary(spec).mult_adds * batch_size / MULT_ADDS_PER_SECOND


# ------------------------------------------------------------------------------------------ receptive fields
@st.cache_resource(max_entries=64, hash_funcs=HASH, show_spinner=False)
def receptive(spec: NetSpec) -> ReceptiveFields:
    return archs.receptive_fields(spec)


def field_text(size: tuple) -> str:
    """(435, 435) -> '435'; (627, 563) -> '627×563'."""
    return str(size[0]) if len(set(size)) == 1 else "×".join(str(s) for s in size)


@st.cache_data(max_entries=64, hash_funcs=HASH, show_spinner=False)
def field_table(spec: NetSpec) -> pd.DataFrame:
    """One row per top-level part: receptive field, jump, centre of the first unit, output size."""
    rf = receptive(spec)
    stages = rf.stages
    return pd.DataFrame({
        "part": [s.name for s in stages],
        "receptive field": [field_text(s.size) for s in stages],
        "jump": [field_text(s.jump) if s.output_size else "—" for s in stages],
        "first centre": [field_text(s.start) if s.output_size else "—" for s in stages],
        "output map": [fmt.shape(s.output_size) if s.output_size else "vector" for s in stages],
        "sees the whole input": [rf.covers_input(s) for s in stages],
    })


# ------------------------------------------------------------------------------------------ measured cost
def cost_seconds(spec: NetSpec, batch_size: int, repeats: int) -> float:
    """Rough time to measure :func:`archs.measure_cost` here: a forward and ~3x that for a training step,
    per repeat plus a warm-up, and a memory-tracked step costing ~4 more."""
    forward = summary(spec).mult_adds * batch_size / MULT_ADDS_PER_SECOND
    return forward * (4 * (repeats + 1) + 12) + 1.0


def cost_job(spec: NetSpec, batch_size: int, device: str, repeats: int) -> Job:
    """:func:`archs.measure_cost`, by a worker: its result is a :class:`CostReport`."""
    return Job("cost", (spec, int(batch_size), device, int(repeats)),
               lambda owner, name: RunRequest(spec, TrainConfig(batch_size=batch_size, seed=0, device=device),
                                              kind="cost", repeats=int(repeats), label=f"cost of {spec.name}",
                                              owner=owner, owner_name=name),
               lambda result, run_id: CostReport.from_dict(result, spec),
               f"Measuring {fmt.plain(spec.name, 60)} at batch {batch_size} on {device}")


@st.cache_data(max_entries=32, hash_funcs={CostReport: lambda r: (r.spec.to_json(indent=None), r.device,
                                                                    r.batch_size, r.repeats)}, show_spinner=False)
def cost_table(report: CostReport) -> pd.DataFrame:
    parts = report.parts
    total_macs = sum(p.mult_adds for p in parts) or 1
    total_fwd = sum(p.forward_s for p in parts) or 1
    total_train = sum(p.train_s for p in parts) or 1
    return pd.DataFrame({
        "part": [p.name for p in parts],
        "what": [p.label for p in parts],
        "mult-adds": [p.mult_adds for p in parts],
        "% mult-adds": [100 * p.mult_adds / total_macs for p in parts],
        "forward ms": [1e3 * p.forward_s for p in parts],
        "% forward": [100 * p.forward_s / total_fwd for p in parts],
        "fwd+bwd ms": [1e3 * p.train_s for p in parts],
        "% fwd+bwd": [100 * p.train_s / total_train for p in parts],
        "G mult-adds/s": [p.mult_adds_per_s / 1e9 for p in parts],
        "kept MiB": [p.kept_bytes / 2**20 for p in parts],
        "estimated MiB": [p.estimate_bytes / 2**20 for p in parts],
    })


# ------------------------------------------------------------------------------------------ activation health
def run_health_job(run_id: str, batch_size: int, seed: int) -> Job:
    """A stored run's activation health, trained and at initialisation, measured by a worker (the run's data is
    read there, never in this server): its result is two :class:`ActivationHealth`."""
    def request(owner: str, name: str | None) -> RunRequest:
        source = jobs.executor().store.get(run_id)
        if not source.has_weights():
            raise RunError(f"run {run_id} has no saved weights (only completed and stopped runs have them)")
        data = DataConfig.from_dict(source.settings().get("data") or {})
        return RunRequest(spec_of(source), TrainConfig(batch_size=batch_size, seed=seed, device="cpu"), data,
                          kind="health", label=f"activation health of {run_id}", source_run=run_id, owner=owner,
                          owner_name=name)

    return Job("run_health", (run_id, int(batch_size), int(seed)), request,
               lambda result, _: (ActivationHealth.from_dict(result["trained"]),
                                  ActivationHealth.from_dict(result["initial"])),
               f"Measuring the activations of run {run_id}")


# ------------------------------------------------------------------------------------------ stored runs
@st.cache_data(ttl=5, show_spinner=False)
def runs() -> list[dict]:
    """The run store's newest rows, ``has_weights`` included (re-read every few seconds: runs finish in the
    background): one query each time, with no lookup or file check per run (:func:`archs.sources.list_runs`)."""
    return sources.list_runs()


@st.cache_data(max_entries=16, ttl=5, show_spinner=False)
def run_metrics(run_id: str) -> list[dict]:
    return sources.run_metrics(run_id)


@st.cache_resource(max_entries=16, show_spinner=False)
def run_source(run_id: str) -> sources.Source:
    return sources.run_source(run_id)


@st.cache_resource(max_entries=2048, show_spinner=False)
def run_spec_or_none(run_id: str) -> NetSpec | None:
    """A stored run's network (None if it cannot be read); a run's spec no longer changes once it has ended."""
    try:
        return sources.run_spec(run_id)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ export
def export_job(spec: NetSpec, fmt_name: str, run_id: str | None) -> Job:
    """The files of an export (a run's trained weights, or the spec's seed-0 initialisation), written by a worker
    into its job's folder: the result is ``(job's run id, ((file name, size), ...))``; :func:`export_file` reads one."""
    return Job("export", (spec, fmt_name, run_id),
               lambda owner, name: RunRequest(spec, TrainConfig(batch_size=1, seed=0, device="cpu"), kind="export",
                                              export_format=fmt_name, source_run=run_id,
                                              label=f"{spec.name} as {fmt_name}", owner=owner, owner_name=name),
               lambda result, job_id: (job_id, tuple((str(n), int(size)) for n, size in result["files"])),
               f"Exporting {fmt.plain(spec.name, 60)} as {fmt_name}")


@st.cache_data(max_entries=8, show_spinner=False)
def export_file(job_id: str, name: str) -> bytes:
    """One file an export job wrote, read from its folder without following a link."""
    return read_regular(jobs.executor().store.get(job_id).path, f"{EXPORT_FOLDER}-{name}")


def health_table(curves) -> pd.DataFrame:
    """Per block, for each (name, ActivationHealth): output mean and std, and dead ReLU channels out of all."""
    blocks = curves[0][1].blocks
    table = {"block": [b.name for b in blocks]}
    for name, h in curves:
        short = name if len(name) <= 28 else name[:27] + "…"
        by_name = {b.name: b for b in h.blocks}
        rows = [by_name.get(b.name) for b in blocks]
        table[f"mean · {short}"] = [r.mean if r else None for r in rows]
        table[f"std · {short}"] = [r.std if r else None for r in rows]
        table[f"dead · {short}"] = [f"{r.dead_units}/{r.relu_units}" if r and r.relu_units else "—" for r in rows]
    return pd.DataFrame(table)


# ------------------------------------------------------------------------------------------ Compare's choices
def chosen_network(choice: str, current: NetSpec) -> tuple[NetSpec, str, str | None]:
    """A Compare side (see ``network_choice`` in pages/compare.py) as (network, label, run id or None). Raises
    SpecError or SourceError (both ValueErrors) for a spec or run that cannot be read."""
    kind, _, rest = choice.partition(":")
    if choice == "build":
        return current, current.name, None
    if choice == "twin":
        return archs.plain_twin(current), f"{current.name} without skips", None
    if kind == "preset":
        return archs.PRESETS[rest], rest, None
    if kind == "run":
        source = run_source(rest)
        return source.spec, source.label, rest
    if kind == "spec":
        spec = archs.decode_spec(rest)
        return spec, f"{spec.name} (file)", None
    raise archs.SpecError(f"not a network choice: {choice[:40]!r}")


def choice_label(choice: str, runs_by_id: dict[str, str]) -> str:
    kind, _, rest = choice.partition(":")
    if choice == "build":
        return "This network (Build page)"
    if choice == "twin":
        return "This network without skips"
    if kind == "preset":
        return f"Preset · {rest}"
    if kind == "run":
        return f"Run · {runs_by_id.get(rest, rest)}"
    try:
        return f"Spec file · {archs.decode_spec(rest).name}"
    except archs.SpecError:
        return "Spec file (unreadable)"
