"""Nexus and its relatives as Optax transformations, plus per-source gradient utilities.

Depends on JAX and Optax only, so it can be chained into any Optax pipeline on its own.
"""

from nexus.optim.fish import fish
from nexus.optim.microbatches import MicrobatchDiagnostics
from nexus.optim.microbatches import MicrobatchState
from nexus.optim.microbatches import accumulate_gradients
from nexus.optim.microbatches import stacked_gradients
from nexus.optim.lookahead import lookahead, snoo
from nexus.optim.nexus import nexus, normalized_descent
from nexus.optim.order_free import OrderFreeDiagnostics, OrderFreeState, order_free_nexus
from nexus.optim.pcgrad import PCGradState, pcgrad, projection_coefficients
from nexus.optim.per_source import (
    cosine_from_gram,
    first_order_nexus,
    per_source_gradients,
    per_source_values_and_gradients,
    sum_normalized,
    tree_gram,
)
from nexus.optim.sam import MicrobatchSAMState, microbatch_sam
from nexus.optim.schedules import inner_call_schedule, tied_inner_learning_rate
from nexus.optim.two_loop import TwoLoopDiagnostics, TwoLoopState, two_loop

__all__ = [
    "MicrobatchDiagnostics",
    "MicrobatchSAMState",
    "MicrobatchState",
    "OrderFreeDiagnostics",
    "OrderFreeState",
    "PCGradState",
    "TwoLoopDiagnostics",
    "TwoLoopState",
    "accumulate_gradients",
    "cosine_from_gram",
    "first_order_nexus",
    "fish",
    "inner_call_schedule",
    "lookahead",
    "microbatch_sam",
    "nexus",
    "normalized_descent",
    "order_free_nexus",
    "pcgrad",
    "per_source_gradients",
    "per_source_values_and_gradients",
    "projection_coefficients",
    "snoo",
    "stacked_gradients",
    "sum_normalized",
    "tied_inner_learning_rate",
    "tree_gram",
    "two_loop",
]
