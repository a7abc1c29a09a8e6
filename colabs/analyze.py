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
# # Analyze runs: AdamW versus Nexus
#
# The paper's claim is *same pretraining loss, better generalization, because the per-source minima
# are closer*. This notebook looks at two runs that differ only in the optimizer, with the library's
# reporting and measurement tools:
#
# 1. the comparison report of `launch.compare` (`nexus.report.write_report`): curves of the training
#    loss, the validation losses on the training and held-out sources and the per-source gradient
#    cosine the trainer logs at every evaluation, and the metrics at **matched training loss**, so
#    that a run that simply trained further does not look better;
# 2. at the final parameters (`load_params`, from each run's latest checkpoint): the per-source
#    gradient cosine matrix (`nexus.measure.make_gradient_geometry`) and the closeness of the
#    per-source minima by short fine-tuning on each source alone (`nexus.measure.make_closeness`).
#
# Give the workdirs of two finished runs (same config except `opt.name`), or leave `WORKDIRS = None`
# to train two short runs here with the library call of `train_lm.ipynb`.

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
# Parameters (the test suite runs this notebook with a tiny model for a few steps).

# %% tags=["parameters"]
WORKDIRS = None  # {"adamw": "<workdir>", "nexus": "<workdir>"}; None trains both below
CONFIG = "tiny"  # the config file of configs/ of the runs trained here
STEPS = 200  # their steps
ROOT = "runs/colab_analyze"  # where they go (ROOT/adamw, ROOT/nexus; reruns resume) and the report
OVERRIDES = {}  # further dotted config overrides for the runs trained here
GRAD_BATCHES = 4  # validation batches per source for the gradient geometry and closeness
CLOSENESS_STEPS = 20  # SGD fine-tuning steps per source (the same for every run)
CLOSENESS_LR = 1e-2  # their learning rate
NUM_LEVELS = 3  # training-loss levels of the matched comparison

# %%
import importlib
import os

from IPython import display
import matplotlib.pyplot as plt
import numpy as np
import optax

import nexus.data
import nexus.measure
import nexus.report
from nexus.train import checkpoint
from nexus.train import checkpoint_eval
from nexus.train import mesh
from nexus.train import schema
from nexus.train import setup
import nexus.train.loop

if WORKDIRS is None:
  WORKDIRS = {}
  for name in ("adamw", "nexus"):
    config = importlib.import_module(f"configs.{CONFIG}").get_config()
    config.update_from_flattened_dict(
      {
        "train.steps": STEPS,
        "opt.name": name,
        "opt.warmup_steps": min(config.opt.warmup_steps, STEPS // 10),
        **OVERRIDES,
      }
    )
    WORKDIRS[name] = os.path.join(ROOT, name)
    print(f"--- training {name} in {WORKDIRS[name]}")
    nexus.train.loop.train(config, WORKDIRS[name])
print(WORKDIRS)

# %% [markdown]
# ## The comparison report
#
# `nexus.report.load_run` reads a run's `metrics.jsonl` and `config.json`;
# `nexus.report.write_report` writes the report of `python -m launch.compare` (markdown and PNG
# plots) for the loaded runs. Its matched-loss table reads every metric off where each run reaches
# the same training loss: the logged training loss is turned into a non-increasing curve (running
# minimum), each evaluation gets the training loss at its step, and a metric at a loss level is
# interpolated linearly in loss between the two evaluations that bracket the level (nothing is
# extrapolated). The levels are chosen inside the range every run's evaluations cover; short runs
# may not overlap, and then the report says so.

# %%
runs = {name: nexus.report.load_run(workdir) for name, workdir in WORKDIRS.items()}
report = nexus.report.write_report(
  list(runs.values()), os.path.join(ROOT, "report"), num_levels=NUM_LEVELS
)
with open(report.path, encoding="utf-8") as f:
  text = f.read().split("\n## Plots")[0]  # the plots' links are relative to the report: shown below
display.display(display.Markdown(text))
for path in report.plots:
  display.display(display.Image(filename=path))

# %% [markdown]
# ## Gradient geometry and closeness at the final parameters
#
# `load_params(workdir, step)` restores the parameters of each run's latest checkpoint
# (`saved_steps(workdir)[-1]`), and only them: no optimizer is rebuilt. The model and its loss
# come from the run's saved config, built as the trainer builds them (`nexus.train.setup`). On
# `GRAD_BATCHES` fixed validation batches per source:
#
# - **gradient geometry**: each source's mean-loss gradient averaged over its batches, all sources
#   at once (`nexus.per_source_gradients` under the hood), and the S×S cosine matrix; negative
#   entries are conflicting pairs. Held-out sources are included to show how each training source's
#   gradient lines up with them;
# - **closeness**: a copy of θ fine-tuned with `CLOSENESS_STEPS` SGD steps on each training source
#   alone gives θ̂_k; reported are (1/K) Σ‖θ − θ̂_k‖² (small near a common minimum), the spread of
#   the θ̂_k, and each source's loss drop.


# %%
# The runs differ in the optimizer only: one model, one set of batches and one compiled measurement.
def load_experiment(workdir):
  """The typed config a run saved (``nexus.train.schema.ExperimentConfig``)."""
  return schema.from_config_dict(checkpoint_eval.load_run_config(workdir))


first, *others = WORKDIRS.values()
reference = load_experiment(first)
for workdir in others:
  experiment = load_experiment(workdir)
  if (experiment.model, experiment.data) != (reference.model, reference.data):
    raise ValueError(
      f"{workdir} has another model or data config than {first}; compare runs that differ in "
      "the optimizer only."
    )
train_sources = nexus.data.train_source_names(reference.data)
held_out = nexus.data.held_out_source_names(reference.data)
batches = nexus.data.make_eval_batches(
  reference.data,
  sources=train_sources + held_out,
  batch_size=reference.eval.batch_size,
  seq_len=reference.train.seq_len,
  num_batches=GRAD_BATCHES,
)
# The model, its loss and its shardings as the trainer builds them (the identity stands in for the
# optimizer, which measuring does not need).
model_run = setup.setup_run(reference, optax.identity(), mesh.make_mesh(reference.mesh))
loss_fn = lambda params, batch: model_run.microbatch_loss(params, batch["tokens"])
measure_geometry = nexus.measure.make_gradient_geometry(loss_fn)
measure_closeness = nexus.measure.make_closeness(
  loss_fn, optax.sgd(CLOSENESS_LR), num_steps=CLOSENESS_STEPS
)
geometry, closeness = {}, {}
for name, workdir in WORKDIRS.items():
  step = checkpoint.saved_steps(workdir)[-1]
  params = checkpoint.load_params(workdir, step, shardings=model_run.state_shardings.params)
  geometry[name] = measure_geometry(params, batches)
  closeness[name] = measure_closeness(params, {source: batches[source] for source in train_sources})
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
print(
  f"{'':10s}{'mean cos (train)':>18s}{'conflicts':>11s}{'cos train→held-out':>20s}"
  f"{'closeness':>11s}{'spread':>9s}{'mean loss drop':>16s}"
)
for name in WORKDIRS:
  matrix = np.asarray(geometry[name]["geometry/cosine_matrix"])
  train_block = matrix[:num_train, :num_train][~np.eye(num_train, dtype=bool)]
  conflicts = int((train_block < 0).sum()) // 2
  to_held_out = matrix[:num_train, num_train:].mean() if held_out else float("nan")
  c = closeness[name]
  print(
    f"{name:10s}{train_block.mean():18.3f}{f'{conflicts}/{pairs}':>11s}{to_held_out:20.3f}"
    f"{c['closeness/mean_sq_dist']:11.3e}{c['closeness/spread']:9.2e}"
    f"{c['closeness/mean_loss_drop']:16.4f}"
  )


# %% [markdown]
# ## Next
#
# For several seeds per optimizer, the same report from a shell:
# `python -m launch.compare <workdir> ... --out=<dir>`.
