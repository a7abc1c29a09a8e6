"""Nexus: the optimizer of Chen et al. (2026) and the system to study it, in JAX.

``import nexus`` loads only the optimizer layer (JAX + Optax): ``nexus.nexus(optax.adamw(...), γ,
num_inner_steps=K)``. The model, data, trainer, measurements and reports live in ``nexus.model``,
``nexus.data``, ``nexus.train``, ``nexus.measure`` (on device) and ``nexus.report`` (offline).
"""

from nexus.optim import TwoLoopDiagnostics
from nexus.optim import TwoLoopState
from nexus.optim import cosine_from_gram
from nexus.optim import first_order_nexus
from nexus.optim import nexus
from nexus.optim import per_source_gradients
from nexus.optim import tied_inner_learning_rate
from nexus.optim import tree_gram

__version__ = "0.1.0"
