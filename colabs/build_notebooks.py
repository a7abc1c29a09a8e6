"""Writes the Colab notebooks of ``colabs/`` from the cell sources below (outputs cleared).

  python colabs/build_notebooks.py          # rewrite colabs/*.ipynb
  python colabs/build_notebooks.py --check  # exit 1 if a committed notebook differs from this file

The notebooks are the committed artefact; this script keeps their cells reviewable as plain Python and
lets ``tests/test_colabs.py`` check that the two never drift apart. Every notebook starts with the same
setup cell (install from GitHub in Colab, use this checkout elsewhere) and has one cell tagged
``parameters`` that the tests rewrite to tiny settings.
"""

import os
import sys

import nbformat

COLABS_DIR = os.path.dirname(os.path.abspath(__file__))

# The package's Git URL for `pip install` in Colab. Edit here, then rerun this script.
NEXUS_GIT_URL = "https://github.com/<org>/nexus"

SETUP = f'''\
# Setup. In Colab: install the package from its Git repository. Elsewhere: use this checkout.
import importlib.util
import pathlib
import sys

IN_COLAB = "google.colab" in sys.modules
NEXUS_GIT_URL = "{NEXUS_GIT_URL}"

if IN_COLAB:
  if "<org>" in NEXUS_GIT_URL:
    raise ValueError("Set NEXUS_GIT_URL in this cell to the Nexus repository's URL.")
  %pip install -q "git+{{NEXUS_GIT_URL}}"
elif importlib.util.find_spec("nexus") is None:
  # Not installed: put the repository root (the folder above colabs/) on the path.
  here = pathlib.Path.cwd().resolve()
  root = next((p for p in (here, *here.parents) if (p / "nexus" / "__init__.py").is_file()), None)
  if root is None:
    raise ModuleNotFoundError("nexus is not installed: run `pip install -e .` in the repository.")
  sys.path.insert(0, str(root))
'''


def md(text):
  return ("markdown", text.strip("\n"), ())


def code(text):
  return ("code", text.strip("\n"), ())


def parameters(text):
  return ("code", text.strip("\n"), ("parameters",))


# ---------------------------------------------------------------------------------------------------
# quickstart.ipynb: needs only nexus.optim.
# ---------------------------------------------------------------------------------------------------
QUICKSTART = [
  md(r"""
# Nexus quickstart: same summed loss, different places

Nexus ([Chen et al. 2026](https://arxiv.org/abs/2604.09258)) trains on several data sources with a
two-loop update: K normalized gradient steps of length γ on an inner copy φ of the parameters θ, one
source per step, then the displacement θ − φ is fed to AdamW as a pseudo-gradient. The paper's claim:
among parameters with the same summed training loss, Nexus prefers those close to every source's own
minima (a *common minimum*), because to second order its update also ascends the cosine similarity
between per-source gradients.

This notebook builds a two-parameter, two-source problem in which that choice exists and can be seen:
the summed loss has a whole valley of minimizers with exactly the same loss, and the points of the
valley differ in how far they are from each source's minima. It trains AdamW and Nexus(AdamW) from
the same start on the same data, shows where each lands, and tracks the per-source gradient cosine.
It needs only `nexus.optim` and runs in well under a minute on a CPU.
"""),
  code(SETUP),
  md(r"""
Parameters (the test suite runs this notebook with fewer steps).
"""),
  parameters(r"""
STEPS = 2000          # outer steps of each run
LEARNING_RATE = 0.01  # AdamW's peak learning rate (cosine decay to 0), the same for both runs
GAMMA = 0.3           # Nexus's inner step length γ at the peak (follows the learning-rate schedule)
K = 4                 # inner steps = micro-batches per outer step
NOISE = 1.0           # standard deviation of the per-micro-batch gradient noise
INIT = (1.5, 2.5)     # the start (x, y) of both runs
SEED = 0
SWEEP_STARTS = [(x, y) for x in (-2.0, 0.0, 2.0) for y in (-2.5, -0.5, 0.5, 2.5)]
GAMMA_SWEEP = (0.03, 0.1, 0.3)  # γ values compared over all the starts in the last section
MATCH_TOL = 0.02      # summed losses within this (1% of the valley's loss) count as matched
"""),
  md(r"""
## The problem

Parameters θ = (x, y). Source 1's loss is zero on the whole line y = +1, source 2's on the line y = −1:

$$L_1(\theta) = \frac{(y-1)^2}{1+t(x)}, \qquad L_2(\theta) = \frac{(y+1)^2}{1-t(x)}, \qquad t(x) = 0.8\tanh x .$$

t(x) decides how the two sources share the curvature: where t > 0 source 2 is the sharper one, where
t < 0 source 1 is. For a fixed x, minimizing L₁ + L₂ over y gives y* = −t(x) and the value exactly 2,
whatever x is. So the summed loss has a **valley of minimizers**, the curve y = −t(x), all with summed
loss 2; a point of the valley is at distance d₁ = 1 + t(x) from source 1's minimizers and
d₂ = 1 − t(x) from source 2's. At x = 0 both distances are 1, the point of the valley closest to both
sources' minima; far along the valley one distance tends to 0.2 and the other to 1.8. As in the paper,
closeness is summarized by the mean squared distance (d₁² + d₂²)/2: 1 at x = 0, up to 1.64 at the ends.

The next cell checks this numerically: same summed loss and zero gradient along the valley, different
per-source distances.
"""),
  code(r"""
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
    valley, valley_sums, valley_grad_norms, valley_distances, closeness(valley)):
  print(f"{point[0]:+5.1f}  {point[1]:+5.2f}  {total:7.4f}  {grad_norm:9.1e}   {d1:5.2f}  {d2:5.2f}   {close:6.3f}")

assert np.allclose(valley_sums, VALLEY_LOSS, atol=1e-5), "the valley's summed loss is not constant"
assert float(valley_grad_norms.max()) < 1e-4, "valley points are not stationary"
assert float(np.ptp(valley_distances[:, 0])) > 1.0, "the distances do not vary along the valley"
print(f"\nSame summed loss along the valley (max deviation {np.abs(valley_sums - VALLEY_LOSS).max():.1e}), "
      f"distance to source 1 from {valley_distances[:, 0].min():.2f} to {valley_distances[:, 0].max():.2f}.")
"""),
  md(r"""
## The data stream and the two optimizers

Each outer step consumes K micro-batches. A micro-batch has a source drawn i.i.d. uniformly (as in the
paper) and, to model minibatch noise, a random zero-mean tilt: its loss is L_s(θ) + ξ·θ with
ξ ~ N(0, NOISE²·I). Averaged over the data the tilt vanishes, so the valley above is the valley of the
expected summed loss. Both optimizers consume exactly the same micro-batches:

- **AdamW** averages the K micro-batch gradients at θ (K-step gradient accumulation);
- **Nexus(AdamW)** (`nexus.nexus(adamw, γ, num_inner_steps=K)`, opaque mode) walks K normalized
  steps of length γ on an inner copy φ, one micro-batch each, and feeds θ − φ to the same AdamW.

Why the noise: to first order in γ, Nexus's pseudo-gradient is γ·Σ_m g_m/‖g_m‖ over the K inner
steps, whose average over the source draws vanishes wherever the two sources' gradients point in
opposite directions, not only where the summed loss is minimal; minibatch noise, present in any real
training run, brings the gradient magnitudes back on average.
Set `NOISE = 0` to see the noiseless case.

Weight decay is 0 here: it would pull both runs toward the origin, which lies on the valley, and mix
that pull into the comparison. γ follows the learning-rate schedule (`nexus.tied_inner_learning_rate`);
γ = 0.3 is at the scale of this landscape (the two sources' minima are 2 apart), and the second-order
term that separates Nexus from plain descent grows relative to the first-order one in proportion to γ.
"""),
  code(r"""
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
  return nexus.nexus(adamw(), nexus.tied_inner_learning_rate(gamma, schedule, LEARNING_RATE), num_inner_steps=K)


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
"""),
  md(r"""
## Train both from the same start

The per-source gradient cosine is measured along each trajectory on the full (noise-free) source
losses with the library's per-source utilities: `nexus.per_source_gradients` stacks the two
gradients, `nexus.tree_gram` forms their Gram matrix, `nexus.cosine_from_gram` the cosines. On the
valley itself the two gradients cancel (its points minimize the sum), so their cosine is exactly −1
there for both runs; the runs differ in how they get there.
"""),
  code(r"""
theta0 = jnp.asarray(INIT, jnp.float32)
stream = make_stream(jax.random.key(SEED), STEPS)
paths = {name: train(name, theta0, stream) for name in OPTIMIZERS}


def source_cosine(theta):
  grads = nexus.per_source_gradients(source_loss, theta, jnp.arange(2))  # [2, 2]: one row per source
  return nexus.cosine_from_gram(nexus.tree_gram(grads))[0, 1]


cosines = {name: np.asarray(jax.vmap(source_cosine)(path)) for name, path in paths.items()}
final = {name: np.asarray(path[-1]) for name, path in paths.items()}

print(f"start (x, y) = ({INIT[0]:+.2f}, {INIT[1]:+.2f}), {STEPS} steps\n")
print("run     final (x, y)        L1+L2     d1     d2   (d1²+d2²)/2")
for name, theta in final.items():
  d1, d2 = distances(theta)
  print(f"{name:6s} ({theta[0]:+.3f}, {theta[1]:+.3f})   {summed_loss(theta):8.4f}   {d1:5.3f}  {d2:5.3f}   "
        f"{closeness(theta):6.3f}")
"""),
  code(r"""
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
  ax.semilogy(steps, np.asarray(summed_loss(path)) - VALLEY_LOSS + 1e-6, color=COLORS[name], label=name)
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
"""),
  md(r"""
## What this run shows

Computed from the run above (nothing here is written in advance).
"""),
  code(r"""
adamw_end, nexus_end = final["AdamW"], final["Nexus"]
loss_gap = abs(float(summed_loss(nexus_end)) - float(summed_loss(adamw_end)))
if loss_gap <= MATCH_TOL:
  print(f"Both runs reached the same summed loss: {float(summed_loss(adamw_end)):.4f} (AdamW) and "
        f"{float(summed_loss(nexus_end)):.4f} (Nexus), difference {loss_gap:.4f} <= {MATCH_TOL}.")
else:
  print(f"The runs did NOT reach the same summed loss: {float(summed_loss(adamw_end)):.4f} (AdamW) vs "
        f"{float(summed_loss(nexus_end)):.4f} (Nexus), difference {loss_gap:.4f} > {MATCH_TOL}; "
        "the distances below are then not a matched-loss comparison.")
close = {name: float(closeness(theta)) for name, theta in final.items()}
nearer = min(close, key=close.get)
print(f"{nearer} landed closer to both sources' minimizers: mean squared distance {close['AdamW']:.3f} (AdamW) vs "
      f"{close['Nexus']:.3f} (Nexus); 1.000 is the best point of the valley (x = 0).")
for name, theta in final.items():
  d1, d2 = distances(theta)
  print(f"  {name}: x = {theta[0]:+.3f}, distance {d1:.3f} to source 1's minimizers, {d2:.3f} to source 2's.")
late = slice(STEPS // 2, None)
print(f"Per-source gradient cosine averaged over the run: {cosines['AdamW'].mean():+.3f} (AdamW), "
      f"{cosines['Nexus'].mean():+.3f} (Nexus); over its second half: {cosines['AdamW'][late].mean():+.3f} "
      f"(AdamW), {cosines['Nexus'][late].mean():+.3f} (Nexus).")
"""),
  md(r"""
## More starts

One start is one sample. The same comparison from a grid of starts, each with its own data stream
shared by both optimizers (the runs are batched with `jax.vmap`).
"""),
  code(r"""
starts = jnp.asarray(SWEEP_STARTS, jnp.float32)
sweep_streams = jax.vmap(lambda key: make_stream(key, STEPS))(
    jax.random.split(jax.random.key(SEED + 1), len(SWEEP_STARTS)))
ends = {
    name: np.asarray(jax.vmap(lambda t0, s, name=name: train(name, t0, s)[-1])(starts, sweep_streams))
    for name in OPTIMIZERS
}
sums = {name: np.asarray(summed_loss(end)) for name, end in ends.items()}
close = {name: np.asarray(closeness(end)) for name, end in ends.items()}

print("start (x, y)    |  AdamW: x_end  L1+L2  (d1²+d2²)/2  |  Nexus: x_end  L1+L2  (d1²+d2²)/2")
for i, (x0, y0) in enumerate(SWEEP_STARTS):
  print(f"({x0:+.1f}, {y0:+.1f})    |        {ends['AdamW'][i, 0]:+6.2f}  {sums['AdamW'][i]:6.3f}  "
        f"{close['AdamW'][i]:6.3f}      |        {ends['Nexus'][i, 0]:+6.2f}  {sums['Nexus'][i]:6.3f}  "
        f"{close['Nexus'][i]:6.3f}")

matched = np.abs(sums["Nexus"] - sums["AdamW"]) <= MATCH_TOL
nexus_closer = close["Nexus"] < close["AdamW"]
adamw_closer = close["AdamW"] < close["Nexus"]
print(f"\nSummed losses matched (within {MATCH_TOL}) from {matched.sum()} of {len(SWEEP_STARTS)} starts.")
print(f"Among the matched ones, Nexus landed closer to both sources' minimizers from "
      f"{(nexus_closer & matched).sum()} starts, AdamW from {(adamw_closer & matched).sum()}.")
print(f"Mean squared distance averaged over all starts: {close['AdamW'].mean():.3f} (AdamW), "
      f"{close['Nexus'].mean():.3f} (Nexus).")

fig, ax = plt.subplots(figsize=(8.5, 6))
draw_landscape(ax)
for i in range(len(SWEEP_STARTS)):
  for name in OPTIMIZERS:
    ax.plot([starts[i, 0], ends[name][i, 0]], [starts[i, 1], ends[name][i, 1]], color=COLORS[name], lw=0.6,
            alpha=0.5)
ax.plot(starts[:, 0], starts[:, 1], "ks", ms=5, label="starts")
for name in OPTIMIZERS:
  ax.plot(ends[name][:, 0], ends[name][:, 1], "o", color=COLORS[name], mec="k", label=f"{name} ends")
ax.set_title("Landing points (lines join each start to its two ends)")
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
plt.show()
"""),
  md(r"""
## How much depends on γ

The term of Nexus's update that differs from descent on the summed loss is second order in γ,
so its weight relative to the first-order term grows in proportion to γ. The same starts and streams
as above, for several γ (AdamW does not depend on γ and is run once):
"""),
  code(r"""
def sweep_ends(name, gamma=GAMMA):
  return np.asarray(jax.vmap(lambda t0, s: train(name, t0, s, gamma)[-1])(starts, sweep_streams))


adamw_close = np.asarray(closeness(sweep_ends("AdamW")))
adamw_sums = np.asarray(summed_loss(sweep_ends("AdamW")))
print(f"{'γ':>6s}  {'mean (d1²+d2²)/2, AdamW':>24s}  {'Nexus':>6s}  {'Nexus closer':>12s}  {'AdamW closer':>12s}  "
      f"{'matched':>8s}")
for gamma in GAMMA_SWEEP:
  nexus_ends = sweep_ends("Nexus", gamma)
  nexus_close = np.asarray(closeness(nexus_ends))
  same_loss = np.abs(np.asarray(summed_loss(nexus_ends)) - adamw_sums) <= MATCH_TOL
  print(f"{gamma:6.3f}  {adamw_close.mean():24.3f}  {nexus_close.mean():6.3f}  "
        f"{(same_loss & (nexus_close < adamw_close)).sum():12d}  {(same_loss & (adamw_close < nexus_close)).sum():12d}  "
        f"{same_loss.sum():5d}/{len(SWEEP_STARTS)}")
"""),
  md(r"""
## Next

- `train_lm.ipynb` trains the tiny language model on the built-in multi-source corpus with the same
  optimizer, through the library API.
- `analyze.ipynb` compares an AdamW and a Nexus run: gradient cosines and closeness of the per-source
  minima at the final parameters, and per-source losses at matched training loss.
- In your own Optax loop: `tx = nexus.nexus(optax.adamw(...), γ, num_inner_steps=K)` and
  `tx.update(params, state, params, grad_fn=grad_fn)` with `grad_fn(params, i)` the gradient of
  micro-batch `i` (see the README).
"""),
]

# ---------------------------------------------------------------------------------------------------
# train_lm.ipynb: the tiny LM through nexus.train.loop.train.
# ---------------------------------------------------------------------------------------------------
TRAIN_LM = [
  md(r"""
# Train the tiny language model with Nexus (library API, no shell)

This notebook loads the tiny experiment config (`configs/tiny.py`), shortens it, trains it with
`nexus.train.loop.train(config, workdir)` on the built-in multi-source corpus (prose, code and
generated math, plus held-out sources that are evaluated but never trained on), and plots the training
loss and the per-source validation losses that the trainer writes to `<workdir>/metrics.jsonl`.
The default of 200 steps runs in minutes on a CPU runtime. The workdir keeps checkpoints: running the
training cell again resumes from the latest one instead of starting over.
"""),
  code(SETUP),
  md(r"""
Parameters (the test suite runs this notebook with a tiny model for a few steps).
"""),
  parameters(r"""
STEPS = 200                       # outer steps; each consumes K micro-batches
OPTIMIZER = "nexus"               # "nexus" or the "adamw" baseline (config.opt.name)
WORKDIR = "runs/colab_train_lm"   # checkpoints, config.json and metrics.jsonl
OVERRIDES = {}                    # further dotted config overrides, e.g. {"opt.inner_learning_rate": 0.02}
"""),
  md(r"""
## The config

`get_config()` returns an `ml_collections.ConfigDict` with sections `model`, `data`, `opt`, `train`,
`eval`, `mesh` and `checkpoint`. The notebook sets the number of steps, the optimizer and any
overrides; the warmup is capped at a tenth of the run so that short runs stay valid.
"""),
  code(r"""
import json
import os

import matplotlib.pyplot as plt

from configs import tiny
import nexus.data
import nexus.train.loop

config = tiny.get_config()
config.train.steps = STEPS
config.opt.name = OPTIMIZER
config.opt.warmup_steps = min(config.opt.warmup_steps, STEPS // 10)
config.update_from_flattened_dict(OVERRIDES)

train_sources = nexus.data.train_source_names(config.data)
held_out = nexus.data.held_out_source_names(config.data)
print(f"optimizer {config.opt.name}: lr {config.opt.learning_rate}, γ {config.opt.inner_learning_rate}, "
      f"K {config.train.num_inner_steps}")
print("model:", dict(config.model))
print("train:", dict(config.train))
print("training sources:", train_sources)
print("held-out sources:", held_out)
"""),
  md(r"""
## Train

The first call builds and caches the corpus, then compiles the step and trains, printing a progress
line. It returns a summary: where the checkpoints and metrics are, the step reached, throughput, and
the last value of every metric.
"""),
  code(r"""
summary = nexus.train.loop.train(config, WORKDIR)
print({key: value for key, value in summary.items() if key != "metrics_last"})
"""),
  md(r"""
## Training loss and per-source validation losses

`metrics.jsonl` holds one JSON object per logged record: `train/loss` (and `train/loss/<source>` for
source-pure micro-batches) every `train.log_every` steps; every `eval.every` steps and at the end, the
validation loss of each training source `eval/loss/<source>` and of each held-out source
`eval/ood_loss/<source>`, with their `_micro`/`_macro` averages. Held-out sources are dashed.
"""),
  code(r"""
with open(os.path.join(WORKDIR, "metrics.jsonl"), encoding="utf-8") as f:
  records = [json.loads(line) for line in f if line.strip()]


def curve(key):
  # (steps, values) of one metric over the run.
  points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
  return [step for step, _ in points], [value for _, value in points]


def eval_key(source):
  return f"eval/ood_loss/{source}" if source in held_out else f"eval/loss/{source}"


fig, (ax_train, ax_eval) = plt.subplots(1, 2, figsize=(13, 4.5))
ax_train.plot(*curve("train/loss"), "k", lw=2, label="all sources")
for source in train_sources:
  ax_train.plot(*curve(f"train/loss/{source}"), lw=0.8, alpha=0.7, label=source)
ax_train.set(title=f"training loss ({config.opt.name})", xlabel="step", ylabel="loss (nats/token)")
ax_train.legend(fontsize=8)
for source in train_sources + held_out:
  ax_eval.plot(*curve(eval_key(source)), "o--" if source in held_out else "o-",
               label=source + (" (held out)" if source in held_out else ""))
ax_eval.set(title="validation loss per source", xlabel="step", ylabel="loss (nats/token)")
ax_eval.legend(fontsize=8)
fig.tight_layout()
plt.show()

print(f"final validation losses (step {summary['step']}):")
last = summary["metrics_last"]
for key in [eval_key(s) for s in train_sources + held_out] + ["eval/loss_macro", "eval/ood_loss_macro"]:
  if last.get(key) is not None:
    print(f"  {key:36s} {last[key]:.4f}")
"""),
  md(r"""
## Next

Train the `"adamw"` baseline in another workdir with the same config and compare the two in
`analyze.ipynb` (it can also train both itself), or from a shell with
`python -m launch.compare <workdir> <workdir> --out=<dir>`.
"""),
]

# ---------------------------------------------------------------------------------------------------
# analyze.ipynb: AdamW vs Nexus runs, gradient geometry and closeness at the final params, matched loss.
# ---------------------------------------------------------------------------------------------------
ANALYZE = [
  md(r"""
# Analyze runs: AdamW versus Nexus

The paper's claim is *same pretraining loss, better generalization, because the per-source minima are
closer*. This notebook looks at two runs that differ only in the optimizer, with the measurement tools
of `nexus.eval`:

1. their curves from `metrics.jsonl`: training loss, validation loss on the training and held-out
   sources, and the mean per-source gradient cosine the trainer logs at every evaluation;
2. at the final parameters (restored from each run's latest checkpoint): the per-source gradient
   cosine matrix (`nexus.eval.make_gradient_geometry`) and the closeness of the per-source minima by
   short fine-tuning on each source alone (`nexus.eval.make_closeness`);
3. the validation losses at **matched training loss** (`nexus.eval.matched`), so that a run that
   simply trained further does not look better.

Give the workdirs of two finished runs (same config except `opt.name`), or leave `WORKDIRS = None` to
train two short runs here with the library call of `train_lm.ipynb`.
"""),
  code(SETUP),
  md(r"""
Parameters (the test suite runs this notebook with a tiny model for a few steps).
"""),
  parameters(r"""
WORKDIRS = None              # {"adamw": "<workdir>", "nexus": "<workdir>"}; None trains both below
STEPS = 200                  # steps of the runs trained here
ROOT = "runs/colab_analyze"  # where those runs go (ROOT/adamw, ROOT/nexus); reruns resume
OVERRIDES = {}               # further dotted config overrides for the runs trained here
GRAD_BATCHES = 4             # validation batches per source for the gradient geometry and closeness
CLOSENESS_STEPS = 20         # SGD fine-tuning steps per source (the same for every run)
CLOSENESS_LR = 1e-2          # their learning rate
NUM_LEVELS = 3               # training-loss levels of the matched comparison
"""),
  code(r"""
import json
import os

import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from configs import tiny
import nexus.data
import nexus.eval
import nexus.train.loop

if WORKDIRS is None:
  WORKDIRS = {}
  for name in ("adamw", "nexus"):
    config = tiny.get_config()
    config.train.steps = STEPS
    config.opt.name = name
    config.opt.warmup_steps = min(config.opt.warmup_steps, STEPS // 10)
    config.update_from_flattened_dict(OVERRIDES)
    WORKDIRS[name] = os.path.join(ROOT, name)
    print(f"--- training {name} in {WORKDIRS[name]}")
    nexus.train.loop.train(config, WORKDIRS[name])
print(WORKDIRS)
"""),
  md(r"""
## Curves

`nexus.eval.load_run` reads a run's `metrics.jsonl` and `config.json`; `Run.curve(key)` gives one
metric's steps and values. Training sources' validation losses are `eval/loss/<source>`, held-out
ones `eval/ood_loss/<source>`, their averages `eval/loss_macro` and `eval/ood_loss_macro`.
"""),
  code(r"""
def load_config(workdir):
  # The config the trainer saved next to the run.
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


runs = {name: nexus.eval.load_run(workdir) for name, workdir in WORKDIRS.items()}
configs = {name: load_config(workdir) for name, workdir in WORKDIRS.items()}
reference = next(iter(configs.values()))
train_sources = nexus.data.train_source_names(reference.data)
held_out = nexus.data.held_out_source_names(reference.data)
source_keys = [f"eval/loss/{s}" for s in train_sources] + [f"eval/ood_loss/{s}" for s in held_out]
panels = ["train/loss", "eval/loss_macro", "eval/ood_loss_macro", "geometry/mean_cosine"] + source_keys
panels = [key for key in panels if any(len(run.curve(key)[0]) for run in runs.values())]

columns = 4
rows = -(-len(panels) // columns)
fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
for ax, key in zip(axes.flat, panels):
  for name, run in runs.items():
    steps, values = run.curve(key)
    ax.plot(steps, values, "-" if key == "train/loss" else "o-", ms=3, label=name)
  ax.set(title=key, xlabel="step")
  ax.title.set_fontsize(9)
for ax in list(axes.flat)[len(panels):]:
  ax.axis("off")
axes[0, 0].legend()
fig.tight_layout()
plt.show()
"""),
  md(r"""
## Gradient geometry and closeness at the final parameters

The final parameters are restored from each run's latest checkpoint with the trainer's own pieces
(model and optimizer rebuilt from the saved config, then `Checkpointer.restore_latest`, as
`nexus.train.loop` does when it resumes). On `GRAD_BATCHES` fixed validation batches per source:

- **gradient geometry**: each source's mean-loss gradient averaged over its batches, all sources at
  once (`nexus.per_source_gradients` under the hood), and the S×S cosine matrix; negative entries are
  conflicting pairs. Held-out sources are included to show how each training source's gradient lines
  up with them;
- **closeness**: a copy of θ fine-tuned with `CLOSENESS_STEPS` SGD steps on each training source alone
  gives θ̂_k; reported are (1/K) Σ‖θ − θ̂_k‖² (small near a common minimum), the spread of the θ̂_k,
  and each source's loss drop.
"""),
  code(r"""
from nexus.train import checkpoint as checkpoint_lib
from nexus.train import mesh as mesh_lib
from nexus.train import optimizer as optimizer_lib
from nexus.train import schedules as schedules_lib
from nexus.train import setup as setup_lib


def restore_final(workdir, config):
  # (step, params, run) from the latest checkpoint in workdir.
  mesh = mesh_lib.make_mesh(config.mesh)
  schedule = schedules_lib.learning_rate_schedule(config.opt, config.train.steps)
  tx = optimizer_lib.build_optimizer(config.opt, schedule, config.train.num_inner_steps)
  run = setup_lib.setup_run(config, tx, mesh)
  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.checkpoint.keep, async_save=False)
  restored = checkpointer.restore_latest(run.abstract_state)
  checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  step, state, _ = restored
  return step, state.params, run


geometry, closeness = {}, {}
for name, workdir in WORKDIRS.items():
  config = configs[name]
  step, params, model_run = restore_final(workdir, config)
  batches = nexus.data.make_eval_batches(
      config.data, sources=train_sources + held_out, batch_size=config.eval.batch_size,
      seq_len=config.train.seq_len, num_batches=GRAD_BATCHES)
  loss_fn = lambda p, batch, model_run=model_run: model_run.microbatch_loss(p, batch["tokens"])
  geometry[name] = nexus.eval.make_gradient_geometry(loss_fn)(params, batches)
  closeness[name] = nexus.eval.make_closeness(
      loss_fn, optax.sgd(CLOSENESS_LR), num_steps=CLOSENESS_STEPS)(
          params, {source: batches[source] for source in train_sources})
  print(f"{name}: measured at step {step}")

fig, axes = plt.subplots(1, len(geometry), figsize=(5.5 * len(geometry), 4.8), squeeze=False)
for ax, (name, metrics) in zip(axes.flat, geometry.items()):
  names, matrix = metrics["geometry/sources"], np.asarray(metrics["geometry/cosine_matrix"])
  image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
  ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
  ax.set_yticks(range(len(names)), names, fontsize=8)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
  ax.set_title(f"{name}: per-source gradient cosine")
  fig.colorbar(image, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

num_train = len(train_sources)
pairs = num_train * (num_train - 1) // 2
print(f"{'':10s}{'mean cos (train)':>18s}{'conflicts':>11s}{'cos train→held-out':>20s}"
      f"{'closeness':>11s}{'spread':>9s}{'mean loss drop':>16s}")
for name in WORKDIRS:
  matrix = np.asarray(geometry[name]["geometry/cosine_matrix"])
  train_block = matrix[:num_train, :num_train][~np.eye(num_train, dtype=bool)]
  conflicts = int((train_block < 0).sum()) // 2
  to_held_out = matrix[:num_train, num_train:].mean() if held_out else float("nan")
  c = closeness[name]
  print(f"{name:10s}{train_block.mean():18.3f}{f'{conflicts}/{pairs}':>11s}{to_held_out:20.3f}"
        f"{c['closeness/mean_sq_dist']:11.3e}{c['closeness/spread']:9.2e}{c['closeness/mean_loss_drop']:16.4f}")
"""),
  md(r"""
## Matched-loss comparison

`nexus.eval.matched` reads every metric off where each run reaches the same training loss: the logged
training loss is turned into a non-increasing curve (running minimum), each evaluation gets the
training loss at its step, and a metric at a loss level is interpolated linearly in loss between the
two evaluations that bracket the level (nothing is extrapolated: a level a run never brackets is NaN).
The levels are chosen inside the range every run's evaluations cover
(`nexus.eval.common_loss_levels`); short runs may not overlap, and then the cell says so.
"""),
  code(r"""
def eval_losses(run):
  # The monotone training loss at the run's evaluation steps.
  loss_steps, losses = run.curve("train/loss")
  eval_steps = run.curve("eval/loss_macro")[0]
  return nexus.eval.loss_at_steps(loss_steps, losses, eval_steps)


levels = nexus.eval.common_loss_levels([eval_losses(run) for run in runs.values()], NUM_LEVELS)
keys = ["eval/loss_macro", "eval/ood_loss_macro"] + source_keys
if not len(levels):
  print("The runs' evaluations do not cover a common training-loss range; train longer to compare them.")
else:
  table = {}
  for name, run in runs.items():
    loss_steps, losses = run.curve("train/loss")
    for key in keys:
      metric_steps, values = run.curve(key)
      if len(metric_steps):
        table[name, key] = nexus.eval.matched_metric(loss_steps, losses, metric_steps, values, levels)
  for level_index, level in enumerate(levels):
    print(f"\nat training loss {level:.4f}:")
    print(f"  {'metric':34s}" + "".join(f"{name:>10s}" for name in runs))
    for key in keys:
      if all((name, key) in table for name in runs):
        print(f"  {key:34s}" + "".join(f"{table[name, key][level_index]:10.4f}" for name in runs))
  if {"adamw", "nexus"} <= runs.keys():
    lowest = len(levels) - 1
    compared = [k for k in source_keys if (("adamw", k) in table and ("nexus", k) in table
                                            and np.isfinite(table["adamw", k][lowest])
                                            and np.isfinite(table["nexus", k][lowest]))]
    lower = [k for k in compared if table["nexus", k][lowest] < table["adamw", k][lowest]]
    print(f"\nAt training loss {levels[lowest]:.4f}, Nexus has the lower validation loss on {len(lower)} of "
          f"{len(compared)} sources: {[k.split('/')[-1] for k in lower]}")
"""),
  md(r"""
## Next

For several seeds per optimizer, plots and a markdown report of the same comparison, run
`python -m launch.compare <workdir> ... --out=<dir>` (or `nexus.eval.write_report`).
"""),
]

NOTEBOOKS = {"quickstart": QUICKSTART, "train_lm": TRAIN_LM, "analyze": ANALYZE}


def build(name: str) -> nbformat.NotebookNode:
  """The notebook ``name`` with deterministic cell ids and no outputs."""
  notebook = nbformat.v4.new_notebook()
  notebook.metadata = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
    "colab": {"provenance": []},
  }
  for index, (kind, source, tags) in enumerate(NOTEBOOKS[name]):
    cell = (
      nbformat.v4.new_markdown_cell(source)
      if kind == "markdown"
      else nbformat.v4.new_code_cell(source)
    )
    cell.id = f"{name}-{index:02d}"
    if tags:
      cell.metadata["tags"] = list(tags)
    notebook.cells.append(cell)
  nbformat.validate(notebook)
  return notebook


def path_of(name: str) -> str:
  return os.path.join(COLABS_DIR, f"{name}.ipynb")


def main(argv) -> int:
  check = "--check" in argv[1:]
  stale = []
  for name in NOTEBOOKS:
    text = nbformat.writes(build(name)) + "\n"
    if check:
      try:
        with open(path_of(name), encoding="utf-8") as f:
          if f.read() != text:
            stale.append(name)
      except FileNotFoundError:
        stale.append(name)
    else:
      with open(path_of(name), "w", encoding="utf-8") as f:
        f.write(text)
      print(f"wrote {path_of(name)}")
  if stale:
    print(f"out of date: {stale}; run python colabs/build_notebooks.py", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
