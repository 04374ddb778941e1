"""Cached calls into ``archs``, keyed by spec: a rerun with an unchanged network does no torch work.

Specs are frozen dataclasses; Streamlit hashes them by their compact JSON.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import archs
from archs import GradientNorms, NetSpec, Summary

from . import fmt

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
    return pd.DataFrame({
        "depth": [r.depth for r in rows],
        "stage": [r.stage for r in rows],
        "layer": [r.name for r in rows],
        "type": [r.type for r in rows],
        "output": [fmt.shape(r.output_shape[1:]) for r in rows],
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


@st.cache_resource(max_entries=32, hash_funcs=HASH, show_spinner="Measuring gradients…")
def gradients(spec: NetSpec, batch_size: int, seed: int) -> GradientNorms:
    return archs.gradient_profile(spec, batch_size, seed)


def gradient_seconds(spec: NetSpec, batch_size: int) -> float:
    """Rough time to measure the gradients of ``spec`` at a batch size on this kind of machine."""
    return 3 * summary(spec).mult_adds * batch_size / MULT_ADDS_PER_SECOND
