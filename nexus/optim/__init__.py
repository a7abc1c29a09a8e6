"""Nexus and its relatives as Optax transformations, plus per-source gradient utilities.

Depends on JAX and Optax only, so it can be chained into any Optax pipeline on its own.
"""

from nexus.optim._fish import fish
from nexus.optim._lookahead import lookahead
from nexus.optim._lookahead import snoo
from nexus.optim._nexus import nexus
from nexus.optim._nexus import normalized_descent
from nexus.optim._order_free import OrderFreeDiagnostics
from nexus.optim._order_free import OrderFreeState
from nexus.optim._order_free import order_free_nexus
from nexus.optim._pcgrad import PCGradState
from nexus.optim._pcgrad import pcgrad
from nexus.optim._pcgrad import projection_coefficients
from nexus.optim._per_source import PER_SOURCE_METHODS
from nexus.optim._per_source import cosine_from_gram
from nexus.optim._per_source import first_order_nexus
from nexus.optim._per_source import per_source_gradients
from nexus.optim._per_source import per_source_values_and_gradients
from nexus.optim._per_source import sum_normalized
from nexus.optim._per_source import tree_gram
from nexus.optim._sam import MicrobatchSAMState
from nexus.optim._sam import microbatch_sam
from nexus.optim._two_loop import TwoLoopDiagnostics
from nexus.optim._two_loop import TwoLoopState
from nexus.optim._two_loop import two_loop
from nexus.optim.microbatches import MicrobatchDiagnostics
from nexus.optim.microbatches import MicrobatchState
from nexus.optim.microbatches import accumulate_gradients
from nexus.optim.microbatches import stacked_gradients
from nexus.optim.schedules import inner_call_schedule
from nexus.optim.schedules import tied_inner_learning_rate

__all__ = [
  "PER_SOURCE_METHODS",
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
