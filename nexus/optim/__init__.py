"""Nexus and its relatives as Optax transformations, plus per-source gradient utilities.

Depends on JAX and Optax only, so it can be chained into any Optax pipeline on its own.
"""

from nexus.optim.fish import fish
from nexus.optim.lookahead import lookahead, snoo
from nexus.optim.nexus import nexus, normalized_descent
from nexus.optim.order_free import OrderFreeDiagnostics, OrderFreeState, order_free_nexus
from nexus.optim.pcgrad import PCGradState, pcgrad, projection_coefficients
from nexus.optim.per_source import (
    cosine_from_gram,
    first_order_nexus,
    per_source_gradients,
    sum_normalized,
    tree_gram,
)
from nexus.optim.sam import MicrobatchSAMState, SAMDiagnostics, microbatch_sam
from nexus.optim.schedules import tied_inner_learning_rate
from nexus.optim.two_loop import TwoLoopDiagnostics, TwoLoopState, two_loop

__all__ = [
    "MicrobatchSAMState",
    "OrderFreeDiagnostics",
    "OrderFreeState",
    "PCGradState",
    "SAMDiagnostics",
    "TwoLoopDiagnostics",
    "TwoLoopState",
    "cosine_from_gram",
    "first_order_nexus",
    "fish",
    "lookahead",
    "microbatch_sam",
    "nexus",
    "normalized_descent",
    "order_free_nexus",
    "pcgrad",
    "per_source_gradients",
    "projection_coefficients",
    "snoo",
    "sum_normalized",
    "tied_inner_learning_rate",
    "tree_gram",
    "two_loop",
]
