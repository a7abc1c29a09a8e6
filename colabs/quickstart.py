# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Nexus quickstart: same summed loss, different places
#
# Nexus ([Chen et al. 2026](https://arxiv.org/abs/2604.09258)) trains on several data sources with a
# two-loop update: K normalized gradient steps of length γ on an inner copy φ of the parameters θ,
# one source per step, then the displacement θ − φ is fed to AdamW as a pseudo-gradient. The paper's
# claim: among parameters with the same summed training loss, Nexus prefers those close to every
# source's own minima (a *common minimum*), because to second order its update also ascends the
# cosine similarity between per-source gradients.
#
# This notebook builds a two-parameter, two-source problem in which that choice exists and can be
# seen: the summed loss has a whole valley of minimizers with exactly the same loss, and the points
# of the valley differ in how far they are from each source's minima. It trains AdamW and
# Nexus(AdamW) from the same start on the same data, shows where each lands, and tracks the
# per-source gradient cosine. It needs only `nexus.optim` and runs in well under a minute on a CPU.

# %%
# Setup: use nexus if it is importable; else install it from the checkout this notebook runs in
# (`pip install -e`), or from a nexus_jax wheel in the working folder (e.g. uploaded to Colab).
# ruff: noqa: E402 (the notebook's imports follow in the cells below this one)
import importlib.util
import pathlib
import sys


def is_checkout(path):
  return (path / "pyproject.toml").is_file() and (path / "nexus" / "__init__.py").is_file()


if importlib.util.find_spec("nexus") is None:
  here = pathlib.Path.cwd().resolve()
  checkout = next(filter(is_checkout, (here, *here.parents)), None)
  wheels = sorted(here.glob("nexus_jax-*.whl"))
  if checkout is not None:
    # %pip install -q -e {checkout}
    sys.path.insert(0, str(checkout))  # the editable install is on sys.path after a restart only
  elif wheels:
    wheel = wheels[-1]
    # %pip install -q {wheel}
  else:
    raise ModuleNotFoundError(
      "nexus is not installed: `pip install -e <its checkout>` or `pip install <nexus_jax wheel>`."
    )
  importlib.invalidate_caches()


# %% [markdown]
# Parameters (the test suite runs this notebook with fewer steps).

# %% tags=["parameters"]
STEPS = 2000  # outer steps of each run
LEARNING_RATE = 0.01  # AdamW's peak learning rate (cosine decay to 0), the same for both runs
GAMMA = 0.3  # Nexus's inner step length γ at the peak (follows the learning-rate schedule)
K = 4  # inner steps = micro-batches per outer step
NOISE = 1.0  # standard deviation of the per-micro-batch gradient noise
INIT = (1.5, 2.5)  # the start (x, y) of both runs
SEED = 0
SWEEP_STARTS = [(x, y) for x in (-2.0, 0.0, 2.0) for y in (-2.5, -0.5, 0.5, 2.5)]
GAMMA_SWEEP = (0.03, 0.1, 0.3)  # γ values compared over all the starts in the last section
MATCH_TOL = 0.02  # summed losses within this (1% of the valley's loss) count as matched

# %% [markdown]
# ## The problem
#
# Parameters θ = (x, y). Source 1's loss is zero on the whole line y = +1, source 2's on the line
# y = −1:
#
# $$L_1(\theta) = \frac{(y-1)^2}{1+t(x)}, \qquad L_2(\theta) = \frac{(y+1)^2}{1-t(x)}, \qquad t(x) = 0.8\tanh x .$$
#
# t(x) decides how the two sources share the curvature: where t > 0 source 2 is the sharper one,
# where t < 0 source 1 is. For a fixed x, minimizing L₁ + L₂ over y gives y* = −t(x) and the value
# exactly 2, whatever x is. So the summed loss has a **valley of minimizers**, the curve y = −t(x),
# all with summed loss 2; a point of the valley is at distance d₁ = 1 + t(x) from source 1's
# minimizers and d₂ = 1 − t(x) from source 2's. At x = 0 both distances are 1, the point of the
# valley closest to both sources' minima; far along the valley one distance tends to 0.2 and the
# other to 1.8. As in the paper, closeness is summarized by the mean squared distance (d₁² + d₂²)/2:
# 1 at x = 0, up to 1.64 at the ends.
#
# The next cell checks this numerically: same summed loss and zero gradient along the valley,
# different per-source distances.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import nexus

TILT = 0.8  # t(x) ranges over (-TILT, TILT)
VALLEY_LOSS = 2.0


def tilt(x):
  return TILT * jnp.tanh(x)


def source_losses(theta):
  # [L_1(θ), L_2(θ)] for θ = (x, y) (any leading batch axes).
  x, y = theta[..., 0], theta[..., 1]
  t = tilt(x)
  return jnp.stack([(y - 1.0) ** 2 / (1.0 + t), (y + 1.0) ** 2 / (1.0 - t)], axis=-1)


def source_loss(theta, source):
  return source_losses(theta)[source]


def summed_loss(theta):
  return jnp.sum(source_losses(theta), axis=-1)


def distances(theta):
  # Euclidean distance to each source's set of minimizers: the lines y = 1 and y = -1.
  y = theta[..., 1]
  return jnp.stack([jnp.abs(y - 1.0), jnp.abs(y + 1.0)], axis=-1)


def closeness(theta):
  # Mean squared distance to the two sources' minimizers, (d1² + d2²)/2.
  return jnp.mean(distances(theta) ** 2, axis=-1)


xs = jnp.linspace(-3.0, 3.0, 13)
valley = jnp.stack([xs, -tilt(xs)], axis=-1)
valley_sums = summed_loss(valley)
valley_grad_norms = jnp.linalg.norm(jax.vmap(jax.grad(summed_loss))(valley), axis=-1)
valley_distances = distances(valley)
print("    x      y    L1+L2   |∇(L1+L2)|    d1     d2   (d1²+d2²)/2")
for point, total, grad_norm, (d1, d2), close in zip(
  valley, valley_sums, valley_grad_norms, valley_distances, closeness(valley)
):
  print(
    f"{point[0]:+5.1f}  {point[1]:+5.2f}  {total:7.4f}  {grad_norm:9.1e}   "
    f"{d1:5.2f}  {d2:5.2f}   {close:6.3f}"
  )

assert np.allclose(valley_sums, VALLEY_LOSS, atol=1e-5), "the valley's summed loss is not constant"
assert float(valley_grad_norms.max()) < 1e-4, "valley points are not stationary"
assert float(np.ptp(valley_distances[:, 0])) > 1.0, "the distances do not vary along the valley"
print(
  "\nSame summed loss along the valley (max deviation "
  f"{np.abs(valley_sums - VALLEY_LOSS).max():.1e}), distance to source 1 from "
  f"{valley_distances[:, 0].min():.2f} to {valley_distances[:, 0].max():.2f}."
)


# %% [markdown]
# ## The data stream and the two optimizers
#
# Each outer step consumes K micro-batches. A micro-batch has a source drawn i.i.d. uniformly (as in
# the paper) and, to model minibatch noise, a random zero-mean tilt: its loss is L_s(θ) + ξ·θ with
# ξ ~ N(0, NOISE²·I). Averaged over the data the tilt vanishes, so the valley above is the valley of
# the expected summed loss. Both optimizers consume exactly the same micro-batches:
#
# - **AdamW** averages the K micro-batch gradients at θ (K-step gradient accumulation);
# - **Nexus(AdamW)** (`nexus.nexus(adamw, γ, num_inner_steps=K)`, opaque mode) walks K normalized
#   steps of length γ on an inner copy φ, one micro-batch each, and feeds θ − φ to the same AdamW.
#
# Why the noise: to first order in γ, Nexus's pseudo-gradient is γ·Σ_m g_m/‖g_m‖ over the K inner
# steps, whose average over the source draws vanishes wherever the two sources' gradients point in
# opposite directions, not only where the summed loss is minimal; minibatch noise, present in any
# real training run, brings the gradient magnitudes back on average. Set `NOISE = 0` to see the
# noiseless case.
#
# Weight decay is 0 here: it would pull both runs toward the origin, which lies on the valley, and
# mix that pull into the comparison. γ follows the learning-rate schedule
# (`nexus.tied_inner_learning_rate`); γ = 0.3 is at the scale of this landscape (the two sources'
# minima are 2 apart), and the second-order term that separates Nexus from plain descent grows
# relative to the first-order one in proportion to γ.


# %%
def microbatch_loss(theta, batch):
  # One micro-batch: its source's loss plus a zero-mean random tilt (minibatch noise).
  return source_loss(theta, batch["source"]) + jnp.dot(batch["noise"], theta)


def make_stream(key, steps):
  # The data both optimizers consume: for every outer step, K (source, noise) micro-batches.
  source_key, noise_key = jax.random.split(key)
  return {
    "source": jax.random.randint(source_key, (steps, K), 0, 2),
    "noise": NOISE * jax.random.normal(noise_key, (steps, K, 2)),
  }


schedule = optax.cosine_decay_schedule(LEARNING_RATE, STEPS)


def adamw():
  return optax.adamw(schedule, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.0)


OPTIMIZERS = ("AdamW", "Nexus")


def make_optimizer(name, gamma):
  if name == "AdamW":
    return adamw()
  return nexus.nexus(
    adamw(), nexus.tied_inner_learning_rate(gamma, schedule, LEARNING_RATE), num_inner_steps=K
  )


microbatch_grad = jax.grad(microbatch_loss)


def train(name, theta0, stream, gamma=GAMMA):
  # Runs one optimizer over the stream; returns θ after every outer step, shape [steps, 2].
  tx = make_optimizer(name, gamma)

  def step(carry, batches):  # batches: the K micro-batches of one outer step
    theta, state = carry
    if name == "Nexus":
      grad_fn = lambda params, i: microbatch_grad(params, jax.tree.map(lambda b: b[i], batches))
      updates, state = tx.update(theta, state, theta, grad_fn=grad_fn)
    else:
      grads = jax.vmap(microbatch_grad, in_axes=(None, 0))(theta, batches)
      updates, state = tx.update(jnp.mean(grads, axis=0), state, theta)
    theta = optax.apply_updates(theta, updates)
    return (theta, state), theta

  _, path = jax.lax.scan(step, (theta0, tx.init(theta0)), stream)
  return path


train = jax.jit(train, static_argnames=("name", "gamma"))

# %% [markdown]
# ## Train both from the same start
#
# The per-source gradient cosine is measured along each trajectory on the full (noise-free) source
# losses with the library's per-source utilities: `nexus.per_source_gradients` stacks the two
# gradients, `nexus.tree_gram` forms their Gram matrix, `nexus.cosine_from_gram` the cosines. On the
# valley itself the two gradients cancel (its points minimize the sum), so their cosine is exactly
# −1 there for both runs; the runs differ in how they get there.

# %%
theta0 = jnp.asarray(INIT, jnp.float32)
stream = make_stream(jax.random.key(SEED), STEPS)
paths = {name: train(name, theta0, stream) for name in OPTIMIZERS}


def source_cosine(theta):
  grads = nexus.per_source_gradients(
    source_loss, theta, jnp.arange(2)
  )  # [2, 2]: one row per source
  return nexus.cosine_from_gram(nexus.tree_gram(grads))[0, 1]


cosines = {name: np.asarray(jax.vmap(source_cosine)(path)) for name, path in paths.items()}
final = {name: np.asarray(path[-1]) for name, path in paths.items()}

print(f"start (x, y) = ({INIT[0]:+.2f}, {INIT[1]:+.2f}), {STEPS} steps\n")
print("run     final (x, y)        L1+L2     d1     d2   (d1²+d2²)/2")
for name, theta in final.items():
  d1, d2 = distances(theta)
  print(
    f"{name:6s} ({theta[0]:+.3f}, {theta[1]:+.3f})   {summed_loss(theta):8.4f}   "
    f"{d1:5.3f}  {d2:5.3f}   {closeness(theta):6.3f}"
  )

# %%
COLORS = {"AdamW": "tab:blue", "Nexus": "tab:orange"}


def draw_landscape(ax):
  # Summed-loss contours, each source's minimizers, the valley and its point closest to both.
  grid_x, grid_y = np.meshgrid(np.linspace(-3, 3, 241), np.linspace(-3, 3, 241))
  total = np.asarray(summed_loss(jnp.stack([grid_x, grid_y], axis=-1)))
  levels = VALLEY_LOSS + np.array([0.05, 0.2, 0.5, 1, 2, 4, 8, 16])
  ax.contour(grid_x, grid_y, total, levels=levels, colors="0.8", linewidths=0.8)
  ax.axhline(1.0, color="tab:green", lw=2, label="source 1 minimizers (y = 1)")
  ax.axhline(-1.0, color="tab:purple", lw=2, label="source 2 minimizers (y = -1)")
  line_x = np.linspace(-3, 3, 200)
  ax.plot(line_x, -np.asarray(tilt(line_x)), "k--", lw=1, label="valley of L1+L2 (loss 2)")
  ax.plot(0, 0, "k*", ms=12, label="valley point closest to both")
  ax.set(xlim=(-3, 3), ylim=(-3, 3), xlabel="x", ylabel="y")


fig, axes = plt.subplots(2, 2, figsize=(12, 10))
ax = axes[0, 0]
draw_landscape(ax)
for name, path in paths.items():
  path = np.asarray(path)
  ax.plot(path[:, 0], path[:, 1], color=COLORS[name], lw=1, alpha=0.8)
  ax.plot(*path[-1], "o", color=COLORS[name], ms=9, mec="k", label=f"{name} end")
ax.plot(*INIT, "ks", ms=7, label="start")
ax.set_title("Where each run lands")
ax.legend(fontsize=7, loc="lower left")

steps = np.arange(1, STEPS + 1)
ax = axes[0, 1]
for name, path in paths.items():
  ax.semilogy(
    steps, np.asarray(summed_loss(path)) - VALLEY_LOSS + 1e-6, color=COLORS[name], label=name
  )
ax.set(title="summed loss − 2 (the valley's loss)", xlabel="step")
ax.legend()

ax = axes[1, 0]
for name in paths:
  ax.plot(steps, cosines[name], color=COLORS[name], label=name)
ax.set(title="cosine(∇L1, ∇L2) along the run", xlabel="step", xscale="log", ylim=(-1.05, 1.05))
ax.legend()

ax = axes[1, 1]
for name, path in paths.items():
  d = np.asarray(distances(path))
  ax.plot(steps, d[:, 0], color=COLORS[name], label=f"{name}: d1 (to y = 1)")
  ax.plot(steps, d[:, 1], color=COLORS[name], ls="--", label=f"{name}: d2 (to y = -1)")
ax.axhline(1.0, color="k", lw=0.5)
ax.set(title="distance to each source's minimizers", xlabel="step")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What this run shows
#
# Computed from the run above (nothing here is written in advance).

# %%
adamw_end, nexus_end = final["AdamW"], final["Nexus"]
loss_gap = abs(float(summed_loss(nexus_end)) - float(summed_loss(adamw_end)))
if loss_gap <= MATCH_TOL:
  print(
    f"Both runs reached the same summed loss: {float(summed_loss(adamw_end)):.4f} (AdamW) and "
    f"{float(summed_loss(nexus_end)):.4f} (Nexus), difference {loss_gap:.4f} <= {MATCH_TOL}."
  )
else:
  print(
    f"The runs did NOT reach the same summed loss: {float(summed_loss(adamw_end)):.4f} (AdamW) vs "
    f"{float(summed_loss(nexus_end)):.4f} (Nexus), difference {loss_gap:.4f} > {MATCH_TOL}; "
    "the distances below are then not a matched-loss comparison."
  )
close = {name: float(closeness(theta)) for name, theta in final.items()}
nearer = min(close, key=close.get)
print(
  f"{nearer} landed closer to both sources' minimizers: mean squared distance "
  f"{close['AdamW']:.3f} (AdamW) vs {close['Nexus']:.3f} (Nexus); 1.000 is the best point of the "
  "valley (x = 0)."
)
for name, theta in final.items():
  d1, d2 = distances(theta)
  print(
    f"  {name}: x = {theta[0]:+.3f}, distance {d1:.3f} to source 1's minimizers, "
    f"{d2:.3f} to source 2's."
  )
late = slice(STEPS // 2, None)
print(
  f"Per-source gradient cosine averaged over the run: {cosines['AdamW'].mean():+.3f} (AdamW), "
  f"{cosines['Nexus'].mean():+.3f} (Nexus); over its second half: "
  f"{cosines['AdamW'][late].mean():+.3f} (AdamW), {cosines['Nexus'][late].mean():+.3f} (Nexus)."
)

# %% [markdown]
# ## More starts
#
# One start is one sample. The same comparison from a grid of starts, each with its own data stream
# shared by both optimizers (the runs are batched with `jax.vmap`).

# %%
starts = jnp.asarray(SWEEP_STARTS, jnp.float32)
sweep_streams = jax.vmap(lambda key: make_stream(key, STEPS))(
  jax.random.split(jax.random.key(SEED + 1), len(SWEEP_STARTS))
)
ends = {
  name: np.asarray(jax.vmap(lambda t0, s, name=name: train(name, t0, s)[-1])(starts, sweep_streams))
  for name in OPTIMIZERS
}
sums = {name: np.asarray(summed_loss(end)) for name, end in ends.items()}
close = {name: np.asarray(closeness(end)) for name, end in ends.items()}

print("start (x, y)    |  AdamW: x_end  L1+L2  (d1²+d2²)/2  |  Nexus: x_end  L1+L2  (d1²+d2²)/2")
for i, (x0, y0) in enumerate(SWEEP_STARTS):
  print(
    f"({x0:+.1f}, {y0:+.1f})    |        {ends['AdamW'][i, 0]:+6.2f}  {sums['AdamW'][i]:6.3f}  "
    f"{close['AdamW'][i]:6.3f}      |        {ends['Nexus'][i, 0]:+6.2f}  {sums['Nexus'][i]:6.3f}  "
    f"{close['Nexus'][i]:6.3f}"
  )

matched = np.abs(sums["Nexus"] - sums["AdamW"]) <= MATCH_TOL
nexus_closer = close["Nexus"] < close["AdamW"]
adamw_closer = close["AdamW"] < close["Nexus"]
print(
  f"\nSummed losses matched (within {MATCH_TOL}) from {matched.sum()} of "
  f"{len(SWEEP_STARTS)} starts."
)
print(
  f"Among the matched ones, Nexus landed closer to both sources' minimizers from "
  f"{(nexus_closer & matched).sum()} starts, AdamW from {(adamw_closer & matched).sum()}."
)
print(
  f"Mean squared distance averaged over all starts: {close['AdamW'].mean():.3f} (AdamW), "
  f"{close['Nexus'].mean():.3f} (Nexus)."
)

fig, ax = plt.subplots(figsize=(8.5, 6))
draw_landscape(ax)
for i in range(len(SWEEP_STARTS)):
  for name in OPTIMIZERS:
    ax.plot(
      [starts[i, 0], ends[name][i, 0]],
      [starts[i, 1], ends[name][i, 1]],
      color=COLORS[name],
      lw=0.6,
      alpha=0.5,
    )
ax.plot(starts[:, 0], starts[:, 1], "ks", ms=5, label="starts")
for name in OPTIMIZERS:
  ax.plot(
    ends[name][:, 0], ends[name][:, 1], "o", color=COLORS[name], mec="k", label=f"{name} ends"
  )
ax.set_title("Landing points (lines join each start to its two ends)")
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
plt.show()


# %% [markdown]
# ## How much depends on γ
#
# The term of Nexus's update that differs from descent on the summed loss is second order in γ, so
# its weight relative to the first-order term grows in proportion to γ. The same starts and streams
# as above, for several γ (AdamW does not depend on γ and is run once):


# %%
def sweep_ends(name, gamma=GAMMA):
  return np.asarray(jax.vmap(lambda t0, s: train(name, t0, s, gamma)[-1])(starts, sweep_streams))


adamw_close = np.asarray(closeness(sweep_ends("AdamW")))
adamw_sums = np.asarray(summed_loss(sweep_ends("AdamW")))
print(
  f"{'γ':>6s}  {'mean (d1²+d2²)/2, AdamW':>24s}  {'Nexus':>6s}  {'Nexus closer':>12s}  "
  f"{'AdamW closer':>12s}  {'matched':>8s}"
)
for gamma in GAMMA_SWEEP:
  nexus_ends = sweep_ends("Nexus", gamma)
  nexus_close = np.asarray(closeness(nexus_ends))
  same_loss = np.abs(np.asarray(summed_loss(nexus_ends)) - adamw_sums) <= MATCH_TOL
  nexus_closer = (same_loss & (nexus_close < adamw_close)).sum()
  adamw_closer = (same_loss & (adamw_close < nexus_close)).sum()
  print(
    f"{gamma:6.3f}  {adamw_close.mean():24.3f}  {nexus_close.mean():6.3f}  "
    f"{nexus_closer:12d}  {adamw_closer:12d}  {same_loss.sum():5d}/{len(SWEEP_STARTS)}"
  )

# %% [markdown]
# ## Next
#
# - `train_lm.ipynb` trains the tiny language model on the built-in multi-source corpus with the
#   same optimizer, through the library API.
# - `analyze.ipynb` compares an AdamW and a Nexus run: gradient cosines and closeness of the
#   per-source minima at the final parameters, and per-source losses at matched training loss.
# - In your own Optax loop: `tx = nexus.nexus(optax.adamw(...), γ, num_inner_steps=K)` and
#   `tx.update(params, state, params, grad_fn=grad_fn)` with `grad_fn(params, i)` the gradient of
#   micro-batch `i` (see the README).
