"""``launch/study_gpu.sh``'s checks before any run, each one line on failure.

  python -m launch.study_gpu_setup missing          # the study's imports this Python lacks, if any
  python -m launch.study_gpu_setup check VARIANT    # imports them all, checks the device, prints the
                                                    # corpus size of configs/study_gpu.py:VARIANT

``missing`` needs nothing beyond the standard library (it runs before the wheels are installed);
``check`` fails unless JAX computes on a GPU, except for the ``dry_run`` variant.
"""

import importlib
import importlib.util
import sys

# What the stages import beyond a stock JAX image (jax, flax, optax, orbax, absl): the data pipeline
# and configs (grain, array_record, tensorflow_datasets, ml_collections), the trainer's TensorBoard
# events (tensorboardX) and the report's plots (matplotlib). launch/gpu_wheels.txt brings them.
NEEDED = (
  "grain",
  "array_record",
  "tensorflow_datasets",
  "ml_collections",
  "tensorboardX",
  "matplotlib",
)


def missing_imports() -> list[str]:
  """The modules of ``NEEDED`` that this Python cannot find."""

  def found(name: str) -> bool:
    try:
      return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
      return False

  return [name for name in NEEDED if not found(name)]


def check(variant: str) -> int:
  """Imports every needed module and checks the device; the corpus size of the config variant."""
  for name in NEEDED:
    importlib.import_module(name)
  import jax  # pylint: disable=g-import-not-at-top

  from configs import study_gpu  # pylint: disable=g-import-not-at-top

  try:
    backend = jax.default_backend()
  except RuntimeError as error:
    raise SystemExit(
      f"error: JAX found no usable device ({error}); is this a GPU machine?"
    ) from None
  if variant != "dry_run" and backend != "gpu":
    raise SystemExit(f"error: JAX computes on {backend}, not a GPU; off a GPU, pass --dry_run.")
  return study_gpu.get_config(variant).data.corpus_bytes_per_source


def main(argv: list[str]) -> None:
  if argv[1:] == ["missing"]:
    print(*missing_imports())
  elif len(argv) in (2, 3) and argv[1] == "check":
    print(check(argv[2] if len(argv) == 3 else ""))
  else:
    raise SystemExit(
      f"usage: python -m launch.study_gpu_setup missing | check [VARIANT]; got {argv[1:]}"
    )


if __name__ == "__main__":
  main(sys.argv)
