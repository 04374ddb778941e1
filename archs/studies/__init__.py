"""Studies: named sets of runs (a sweep over fields, an Optuna search, or one of the seed articles' claims).

The pure parts a study driver calls, with no Streamlit, no run store, no executor:

- :mod:`archs.studies.space`: the fields to vary, named by SpecError's paths (``stages[2].growth_rate``,
  ``stages[*].blocks``, ``head.dropout``, ``train.lr``, ``train.recipe``), their search domains, the
  command line's ``FIELD=V1,V2`` / ``FIELD=LOW:HIGH`` syntax, setting an assignment on a spec and a
  TrainConfig with full validation, grids and trial labels;
- :mod:`archs.studies.pareto`: the objectives (accuracy, params, mult-adds, training FLOPs, training
  time) and the Pareto front of a set of runs (no torch);
- :mod:`archs.studies.families`: the three claims (residual, dense, inception) as networks for
  Fashion-MNIST, their budgets, and :func:`judge`, which turns their runs' results into a verdict;
- :mod:`archs.studies.ladder`: a claim's budget ladder, its completed studies at several budgets laid out by
  steps (each one's verdict and gaps) and said in words.

Names load on first use, so ``import archs.studies.pareto`` does not import torch.
"""

from archs._lazy import lazy_exports

_EXPORTS = {
    "archs.studies.space": ("Domain", "FieldPath", "StudyError", "Vary", "apply", "domain", "field_info", "grid",
                            "listed", "parse_path", "parse_value", "parse_vary", "trial_label"),
    "archs.studies.pareto": ("OBJECTIVES", "Objective", "dominates", "pareto_front", "train_flops"),
    "archs.studies.families": ("CLAIMS", "Budget", "Claim", "ClaimNet", "dense_nets", "inception_nets", "judge",
                               "net_costs", "residual_nets"),
    "archs.studies.ladder": ("Rung", "claim_ladders", "ladder", "ladder_text", "parse_budgets", "rung_definitions"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
