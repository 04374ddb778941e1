"""Claims of the seed articles: what a claim is, how it is judged (:mod:`.base`), and the claims themselves,
registered by name in :data:`CLAIMS`. The three built-in ones are in :mod:`.builtin`, each beside the function
that makes its networks.

Every module of this package is imported here, so a new claim is one new file calling
``register_claim(Claim(...))`` (its networks made beside it); the command line's ``study claim NAME``, the Studies
page and :func:`judge` read :data:`CLAIMS` with nothing else edited.
"""

from archs._registry import import_modules

from .base import (
    CLAIM_STEPS,
    CLAIMS,
    CONVERGENCE_RULE,
    DEGRADATION_NETS,
    DEPTH_RULE,
    FULL_TEST,
    MATCHED_BUDGET,
    MATCHED_NETS,
    MATCHED_RULE,
    MATCHED_SIZE,
    MAX_GAP,
    RESIDUAL_STEPS,
    SAME_TRAINING,
    VERDICTS,
    Budget,
    Claim,
    ClaimNet,
    converged,
    curve_positions,
    dense_net,
    depth_verdicts,
    inception_net,
    judge,
    matched_net,
    matched_stem,
    matched_verdicts,
    net_costs,
    register_claim,
    residual_net,
    rule,
    verdict_text,
)

import_modules(__name__, __path__)  # every module but base: each registers its claims

from .builtin import dense_nets, inception_nets, residual_nets  # noqa: E402  (the built-in claims' networks)

__all__ = ["Budget", "CLAIMS", "CLAIM_STEPS", "CONVERGENCE_RULE", "Claim", "ClaimNet", "DEGRADATION_NETS", "DEPTH_RULE",
           "FULL_TEST", "MATCHED_BUDGET", "MATCHED_NETS", "MATCHED_RULE", "MATCHED_SIZE", "MAX_GAP", "RESIDUAL_STEPS",
           "SAME_TRAINING", "VERDICTS", "converged", "curve_positions", "dense_net", "dense_nets", "depth_verdicts",
           "inception_net", "inception_nets", "judge", "matched_net", "matched_stem", "matched_verdicts", "net_costs",
           "register_claim", "residual_net", "residual_nets", "rule", "verdict_text"]
