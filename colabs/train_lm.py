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
# # Train the tiny language model with Nexus (library API, no shell)
#
# This notebook loads the tiny experiment config (`configs/tiny.py`), shortens it, trains it with
# `nexus.train.loop.train(config, workdir)` on the built-in multi-source corpus (prose, code and
# generated math, plus held-out sources that are evaluated but never trained on), and plots the
# training loss and the per-source validation losses that the trainer writes to
# `<workdir>/metrics.jsonl`. The default of 200 steps runs in minutes on a CPU runtime. The workdir
# keeps checkpoints: running the training cell again resumes from the latest one instead of starting
# over.

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
CONFIG = "tiny"  # a config file of configs/ (its get_config())
STEPS = 200  # outer steps; each consumes K micro-batches
OPTIMIZER = "nexus"  # "nexus" or the "adamw" baseline (config.opt.name)
WORKDIR = "runs/colab_train_lm"  # checkpoints, config.json and metrics.jsonl
OVERRIDES = {}  # further dotted config overrides, e.g. {"opt.inner_learning_rate": 0.02}

# %% [markdown]
# ## The config
#
# `configs/<CONFIG>.py`'s `get_config()` returns an `ml_collections.ConfigDict` with sections
# `model`, `data`, `opt`, `train`, `eval`, `mesh` and `checkpoint`. Dotted overrides are applied as
# `launch.train`'s `--config.<section>.<field>` flags are: the number of steps, the optimizer, a
# warmup capped at a tenth of the run (so that short runs stay valid), then `OVERRIDES`.

# %%
import importlib

import matplotlib.pyplot as plt

import nexus.data
import nexus.report
import nexus.train.loop

config = importlib.import_module(f"configs.{CONFIG}").get_config()
config.update_from_flattened_dict(
  {
    "train.steps": STEPS,
    "opt.name": OPTIMIZER,
    "opt.warmup_steps": min(config.opt.warmup_steps, STEPS // 10),
    **OVERRIDES,
  }
)

train_sources = nexus.data.train_source_names(config.data)
held_out = nexus.data.held_out_source_names(config.data)
print(
  f"optimizer {config.opt.name}: lr {config.opt.learning_rate}, "
  f"γ {config.opt.inner_learning_rate}, K {config.train.num_inner_steps}"
)
print("model:", dict(config.model))
print("train:", dict(config.train))
print("training sources:", train_sources)
print("held-out sources:", held_out)

# %% [markdown]
# ## Train
#
# The first call builds and caches the corpus, then compiles the step and trains, printing a
# progress line. It returns a summary: where the checkpoints and metrics are, the step reached,
# throughput, and the last value of every metric.

# %%
summary = nexus.train.loop.train(config, WORKDIR)
print({key: value for key, value in summary.items() if key != "metrics_last"})

# %% [markdown]
# ## Training loss and per-source validation losses
#
# `nexus.report.load_run` reads the run's `metrics.jsonl` (one JSON object per logged record) and
# `config.json`; `run.curve(key)` gives one metric's steps and values, `run.last(key)` its latest
# value. The trainer logs `train/loss` (and `train/loss/<source>` for source-pure micro-batches)
# every `train.log_every` steps; every `eval.every` steps and at the end, the validation loss of
# each training source `eval/loss/<source>` and of each held-out source `eval/ood_loss/<source>`,
# with their `_micro`/`_macro` averages. Held-out sources are dashed.

# %%
run = nexus.report.load_run(WORKDIR)


def eval_key(source):
  return f"eval/ood_loss/{source}" if source in held_out else f"eval/loss/{source}"


fig, (ax_train, ax_eval) = plt.subplots(1, 2, figsize=(13, 4.5))
ax_train.plot(*run.curve("train/loss"), "k", lw=2, label="all sources")
for source in train_sources:
  ax_train.plot(*run.curve(f"train/loss/{source}"), lw=0.8, alpha=0.7, label=source)
ax_train.set(title=f"training loss ({run.optimizer})", xlabel="step", ylabel="loss (nats/token)")
ax_train.legend(fontsize=8)
for source in train_sources + held_out:
  style, label = ("o--", f"{source} (held out)") if source in held_out else ("o-", source)
  ax_eval.plot(*run.curve(eval_key(source)), style, label=label)
ax_eval.set(title="validation loss per source", xlabel="step", ylabel="loss (nats/token)")
ax_eval.legend(fontsize=8)
fig.tight_layout()
plt.show()

print(f"final validation losses (step {summary['step']}):")
for key in [eval_key(s) for s in train_sources + held_out] + [
  "eval/loss_macro",
  "eval/ood_loss_macro",
]:
  if run.last(key) is not None:
    print(f"  {key:36s} {run.last(key):.4f}")

# %% [markdown]
# ## Next
#
# Train the `"adamw"` baseline in another workdir with the same config and compare the two in
# `analyze.ipynb` (it can also train both itself), or from a shell with
# `python -m launch.compare <workdir> <workdir> --out=<dir>`.
