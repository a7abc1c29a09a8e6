"""Hyperparameter sweeps with equal budgets and bracketed optima, for comparing tuned methods fairly.

A comparison of optimizers is only as fair as their tuning: a tuned method against a default
baseline measures the tuning. A sweep here gives every method a grid over its own config fields
(AdamW: learning rate and final-lr fraction; Nexus: learning rate × γ; ...) with the same number of
runs each, selects on a *validation* metric (lower is better, e.g. ``eval/loss_macro``), and
brackets the optimum: while the best setting sits at the edge of the grid in a numeric field, one
run is added one grid step beyond that edge (the step is geometric when the field's values are
positive, e.g. a learning rate, arithmetic otherwise), up to ``max_extensions`` extra runs per
method or a field's bound. Every extension is recorded in the result, so a reader sees whether each
optimum is bracketed and what each method cost.

The runner is a callable ``evaluate(method, settings, seed) -> float``, so the logic is independent
of how runs are made (``launch.sweep`` trains subprocesses of ``launch.train``; tests use
closed-form objectives). Decisions depend only on the scores, so a rerun with the same scores makes
the same runs: a runner that skips finished runs makes the sweep resumable.
"""

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import itertools
import json
import math
import os
from typing import Any

Settings = dict[str, Any]
Evaluate = Callable[[str, Settings, int], float]
DEFAULT_METRIC = "eval/loss_macro"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
  """What to sweep: per-method grids, the selection metric, seeds, extension limits and field bounds."""

  methods: Mapping[str, Mapping[str, Sequence[Any]]]
  """``{method: {config field: [values]}}``; every method's grid has the same number of points."""
  metric: str = DEFAULT_METRIC
  """The validation metric minimized by the selection (its value at the end of each run)."""
  seeds: tuple[int, ...] = (0,)
  """Seeds per setting; a setting's score is the mean over them."""
  max_extensions: int = 3
  """Extra runs (settings) per method allowed for bracketing."""
  bounds: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
  """``{field: (low, high)}``: an extension never leaves these (inclusive) bounds."""

  def __post_init__(self):
    if not self.methods:
      raise ValueError(
        "a sweep needs at least one method, e.g. {'adamw': {'opt.learning_rate': [1e-3, 3e-3]}}."
      )
    for method, fields in self.methods.items():
      if not fields:
        raise ValueError(
          f"method {method!r} has no fields to sweep; give it at least one field with values."
        )
      for field, values in fields.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
          raise ValueError(
            f"{method}: field {field!r} needs a non-empty list of values; got {values!r}."
          )
        if len(set(map(repr, values))) != len(values):
          raise ValueError(f"{method}: field {field!r} repeats a value in {list(values)}.")
    sizes = {
      method: math.prod(len(values) for values in fields.values())
      for method, fields in self.methods.items()
    }
    if len(set(sizes.values())) != 1:
      raise ValueError(
        f"grids have different sizes {sizes}; give every method the same number of runs (an equal "
        "tuning budget), e.g. by adding or removing values."
      )
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"seeds={list(self.seeds)} must be distinct and at least one.")
    if not isinstance(self.max_extensions, int) or self.max_extensions < 0:
      raise ValueError(f"max_extensions={self.max_extensions!r} must be a non-negative integer.")
    for field, bound in self.bounds.items():
      if len(bound) != 2 or not bound[0] < bound[1]:
        raise ValueError(f"bound of {field!r} must be (low, high) with low < high; got {bound!r}.")


@dataclasses.dataclass
class MethodResult:
  """One method's sweep: every setting tried with its per-seed scores, the choice and its bracketing."""

  method: str
  points: list[dict] = dataclasses.field(default_factory=list)
  """``[{"settings": {...}, "scores": {seed: value}, "score": mean, "extension": bool}]`` in run order."""
  chosen: Settings | None = None
  score: float = math.inf
  bracketed: bool = False
  notes: list[str] = dataclasses.field(default_factory=list)
  """What the bracketing did: each extension, each field left at a bound or at the grid's edge."""

  @property
  def num_runs(self) -> int:
    return sum(len(point["scores"]) for point in self.points)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_value(text: str):
  """A command-line value: a JSON number, boolean or null, else the string itself."""
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def parse_grids(items: Sequence[str]) -> dict[str, dict[str, list]]:
  """``{method: {field: [values]}}`` from command-line items ``METHOD:FIELD=V1,V2`` (``launch.sweep --grid``)."""
  methods: dict[str, dict[str, list]] = {}
  for item in items:
    method, sep, rest = item.partition(":")
    field, eq, values = rest.partition("=")
    if not (sep and eq and method and field and values):
      raise ValueError(
        f"--grid={item!r} must look like METHOD:FIELD=V1,V2, e.g. adamw:opt.learning_rate=1e-3,3e-3."
      )
    methods.setdefault(method, {})[field] = [parse_value(v) for v in values.split(",")]
  return methods


def grid_points(fields: Mapping[str, Sequence[Any]]) -> list[Settings]:
  """The Cartesian product of the fields' values, in order (the last field varies fastest)."""
  names = list(fields)
  return [
    dict(zip(names, combination))
    for combination in itertools.product(*(fields[name] for name in names))
  ]


def step_beyond(values: Sequence[float], direction: int) -> float:
  """The next value past the largest (direction +1) or smallest (−1) of ``values`` (at least two, distinct).

  Geometric (the ratio of the two outermost values) when all are positive, else arithmetic; integer
  fields stay integers.
  """
  ordered = sorted(values)
  edge, inner = (ordered[-1], ordered[-2]) if direction > 0 else (ordered[0], ordered[1])
  if all(v > 0 for v in ordered):
    nxt = edge * (edge / inner)
  else:
    nxt = edge + (edge - inner)
  if all(isinstance(v, int) for v in ordered):
    nxt = int(round(nxt))
    if nxt == edge:
      nxt = edge + direction
  return nxt


def _key(settings: Settings) -> str:
  return json.dumps(settings, sort_keys=True)


def _edge_extension(
  result: MethodResult,
  fields: Sequence[str],
  bounds: Mapping[str, tuple[float, float]],
) -> tuple[Settings | None, list[str]]:
  """The next setting that would bracket the best one (None if it is bracketed), and why not where stuck."""
  best = result.chosen
  assert best is not None  # a method's best setting is chosen before its edges are extended
  tried = {_key(point["settings"]) for point in result.points}
  stuck = []
  for field in fields:
    # Values of `field` tried on the line through the best setting (all other fields equal).
    line = [
      p["settings"][field]
      for p in result.points
      if all(p["settings"][f] == best[f] for f in fields if f != field)
    ]
    if not all(_is_number(v) for v in line) or len(set(line)) < 2:
      continue
    value = best[field]
    direction = 1 if value == max(line) else -1 if value == min(line) else 0
    if direction == 0:
      continue
    nxt = step_beyond(line, direction)
    low, high = bounds.get(field, (-math.inf, math.inf))
    if not low <= nxt <= high:
      stuck.append(
        f"{field}={value!r} is at the grid's {'upper' if direction > 0 else 'lower'} edge, and the next "
        f"value {nxt!r} is outside its bound [{low}, {high}]"
      )
      continue
    candidate = {**best, field: nxt}
    if _key(candidate) not in tried:
      return candidate, stuck
  return None, stuck


def _add_point(
  result: MethodResult,
  settings: Settings,
  seeds: Sequence[int],
  evaluate: Evaluate,
  extension: bool,
) -> None:
  scores = {}
  for seed in seeds:
    score = float(evaluate(result.method, dict(settings), seed))
    if not math.isfinite(score):
      score = math.inf  # a diverged run loses the selection
    scores[seed] = score
  mean = sum(scores.values()) / len(scores)
  result.points.append(
    {"settings": dict(settings), "scores": scores, "score": mean, "extension": extension}
  )
  if mean < result.score:
    result.chosen, result.score = dict(settings), mean


def sweep_method(
  method: str,
  fields: Mapping[str, Sequence[Any]],
  evaluate: Evaluate,
  *,
  seeds: Sequence[int] = (0,),
  max_extensions: int = 3,
  bounds: Mapping[str, tuple[float, float]] | None = None,
) -> MethodResult:
  """Runs ``method``'s grid, then extends it one setting at a time until the best one is bracketed."""
  result = MethodResult(method)
  for settings in grid_points(fields):
    _add_point(result, settings, seeds, evaluate, extension=False)
  if result.chosen is None:
    raise ValueError(
      f"every run of {method!r} diverged (a non-finite score); lower its grid's learning rates."
    )
  extensions = 0
  while True:
    candidate, stuck = _edge_extension(result, list(fields), bounds or {})
    if candidate is None:
      result.notes.extend(stuck)
      result.bracketed = not stuck
      break
    if extensions == max_extensions:
      edge = [f for f in fields if candidate[f] != result.chosen[f]][0]
      result.notes.extend(stuck)
      result.notes.append(
        f"NOT bracketed: the best {edge}={result.chosen[edge]!r} is still at the grid's edge after "
        f"{max_extensions} extension(s); widen the grid or raise max_extensions"
      )
      break
    extensions += 1
    previous = dict(result.chosen)
    _add_point(result, candidate, seeds, evaluate, extension=True)
    changed = [f for f in fields if candidate[f] != previous[f]][0]
    result.notes.append(
      f"extended {changed} to {candidate[changed]!r} (best was at the edge, {changed}="
      f"{previous[changed]!r}): score {result.points[-1]['score']:.4f}"
    )
  return result


MapMethods = Callable[[Callable[[str], MethodResult], list[str]], list[MethodResult]]


def run_sweep(
  spec: SweepSpec, evaluate: Evaluate, *, map_methods: MapMethods | None = None
) -> dict[str, MethodResult]:
  """Sweeps every method of ``spec`` with ``evaluate``; ``{method: MethodResult}``.

  ``map_methods(sweep, methods)`` (default: one after another) runs ``sweep`` on every method: the
  methods are independent, so a runner that trains in parallel may sweep them at once (their
  bracketing extensions then run side by side instead of one method's after the other's).
  """

  def sweep(method: str) -> MethodResult:
    return sweep_method(
      method,
      spec.methods[method],
      evaluate,
      seeds=spec.seeds,
      max_extensions=spec.max_extensions,
      bounds=spec.bounds,
    )

  methods = list(spec.methods)
  results = map_methods(sweep, methods) if map_methods else [sweep(m) for m in methods]
  return dict(zip(methods, results))


def summary_json(spec: SweepSpec, results: Mapping[str, MethodResult]) -> dict:
  """A JSON-ready summary: the spec, and per method the chosen settings, score, bracketing and every run."""
  return {
    "metric": spec.metric,
    "seeds": list(spec.seeds),
    "chosen": {method: result.chosen for method, result in results.items()},
    "methods": {
      method: {
        "chosen": result.chosen,
        "score": result.score,
        "bracketed": result.bracketed,
        "num_runs": result.num_runs,
        "notes": result.notes,
        "points": [
          {**point, "scores": {str(s): v for s, v in point["scores"].items()}}
          for point in result.points
        ],
      }
      for method, result in results.items()
    },
  }


def summary_markdown(spec: SweepSpec, results: Mapping[str, MethodResult]) -> str:
  """The summary as markdown: chosen settings per method, then every setting tried."""
  lines = [
    f"# Sweep: selection on validation `{spec.metric}` (lower is better), seeds {list(spec.seeds)}",
    "",
    "| method | chosen settings | score | runs | optimum bracketed |",
    "|---|---|---|---|---|",
  ]
  for method, result in results.items():
    chosen = ", ".join(f"{k}={v!r}" for k, v in (result.chosen or {}).items())
    lines.append(
      f"| {method} | {chosen} | {result.score:.4f} | {result.num_runs} | "
      f"{'yes' if result.bracketed else 'no'} |"
    )
  runs = {result.num_runs for result in results.values()}
  if len(runs) > 1:
    lines += [
      "",
      "Runs per method differ because of bracketing extensions: "
      + ", ".join(f"{m} {r.num_runs}" for m, r in results.items())
      + ".",
    ]
  for method, result in results.items():
    fields = list(result.points[0]["settings"])
    lines += [
      "",
      f"## {method}",
      "",
      "| " + " | ".join(fields) + " | score | per seed | extension |",
      "|" + "---|" * (len(fields) + 3),
    ]
    for point in result.points:
      per_seed = ", ".join(f"{v:.4f}" for v in point["scores"].values())
      lines.append(
        "| "
        + " | ".join(repr(point["settings"][f]) for f in fields)
        + f" | {point['score']:.4f} | {per_seed} | {'yes' if point['extension'] else ''} |"
      )
    lines += [""] + [f"- {note}" for note in result.notes]
  return "\n".join(lines) + "\n"


def append_to_report(report_path: str, summary_path: str) -> None:
  """Appends the markdown of the sweep summary ``summary_path`` (``sweep.json``, with ``sweep.md``
  beside it) to a report as its "Tuning" section, headings one level down."""
  markdown_path = os.path.join(os.path.dirname(summary_path), "sweep.md")
  if not os.path.isfile(markdown_path):
    raise ValueError(
      f"{markdown_path} is missing; pass --sweep=<launch.sweep --out>/sweep.json of a finished sweep."
    )
  with open(markdown_path, encoding="utf-8") as f:
    title, _, body = f.read().partition("\n")
  body = "\n".join(f"#{line}" if line.startswith("#") else line for line in body.splitlines())
  heading = "## Tuning (launch.sweep, equal budgets): " + title.lstrip("# ")
  with open(report_path, "a", encoding="utf-8") as f:
    f.write(f"\n{heading}\n{body}\n")
