"""Nexus: the optimizer of Chen et al. (2026) and the system to study it, in JAX.

``import nexus`` loads only the optimizer layer (JAX + Optax): ``nexus.nexus(optax.adamw(...), γ,
num_inner_steps=K)``. The model, data, trainer and evaluation live in ``nexus.model``, ``nexus.data``,
``nexus.train`` and ``nexus.eval``.
"""

from nexus.optim import (
    TwoLoopDiagnostics,
    TwoLoopState,
    cosine_from_gram,
    first_order_nexus,
    nexus,
    per_source_gradients,
    tied_inner_learning_rate,
    tree_gram,
)

__version__ = "0.1.0"
