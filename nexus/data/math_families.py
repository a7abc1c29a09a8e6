"""Generators of math word-problem families: each returns (question, worked solution, exact answer).

Training families teach single skills; held-out families combine two of them in ways the training
corpus never shows (a GSM8K-like test of compositional generalisation for downstream accuracy):

| family | source | skill |
|---|---|---|
| add_sub | arithmetic | a two-step addition/subtraction story |
| mul_div | arithmetic | a one-step multiplication or exact-division story |
| linear_equation | algebra | solve ``a x ± b = c`` |
| evaluate_expression | algebra | evaluate ``a x ± b`` at a given x |
| groups_then_change | math_composite (held out) | mul_div followed by add_sub, in one story |
| cost_equation | math_composite (held out) | a shopping story that is a linear equation |
| solve_then_evaluate | math_composite (held out) | linear_equation, then evaluate_expression |

Worked solutions reuse the training families' step phrasing (``3 * 4 = 12.``, ``Subtract 7 from both
sides: ...``), so a held-out solution is a concatenation of steps seen in training. Answers are
integers. Generation uses ``random.Random``, whose integer draws are stable across Python versions.
"""

from collections.abc import Callable
import random
from typing import NamedTuple

NAMES = (
  "Ava",
  "Ben",
  "Chloe",
  "Diego",
  "Emma",
  "Farah",
  "Hugo",
  "Iris",
  "Jonas",
  "Kira",
  "Liam",
  "Maya",
  "Noah",
  "Omar",
  "Priya",
  "Sofia",
  "Tariq",
  "Yuki",
  "Zoe",
  "Mateo",
)
ITEMS = (
  "apples",
  "marbles",
  "stickers",
  "books",
  "pencils",
  "cookies",
  "stamps",
  "shells",
  "cards",
  "buttons",
)
CONTAINERS = ("boxes", "bags", "jars", "baskets", "crates")
PRICED_ITEMS = (
  ("notebook", "notebooks"),
  ("ticket", "tickets"),
  ("sandwich", "sandwiches"),
  ("pen", "pens"),
)
EXTRAS = ("a bag", "a map", "a bottle of water", "a poster")


class Problem(NamedTuple):
  question: str
  solution: str
  answer: int


def _add_step(a: int, b: int) -> tuple[str, int]:
  return f"{a} + {b} = {a + b}.", a + b


def _sub_step(a: int, b: int) -> tuple[str, int]:
  return f"{a} - {b} = {a - b}.", a - b


def _mul_step(a: int, b: int) -> tuple[str, int]:
  return f"{a} * {b} = {a * b}.", a * b


def _solve_linear(a: int, b: int, c: int, variable: str = "x") -> tuple[str, int]:
  """Steps solving ``a·x + b = c`` (b may be negative), with an integer solution."""
  if b >= 0:
    isolate = f"Subtract {b} from both sides: {a}{variable} = {c - b}."
  else:
    isolate = f"Add {-b} to both sides: {a}{variable} = {c - b}."
  x = (c - b) // a
  return f"{isolate} Divide both sides by {a}: {variable} = {x}.", x


def _signed(a: int, variable: str, b: int) -> str:
  return f"{a}{variable} + {b}" if b >= 0 else f"{a}{variable} - {-b}"


def _evaluate_steps(a: int, b: int, x: int) -> tuple[str, int]:
  """Steps evaluating ``a·x + b`` (b may be negative)."""
  product_step, product = _mul_step(a, x)
  if b >= 0:
    last_step, value = _add_step(product, b)
  else:
    last_step, value = _sub_step(product, -b)
  return f"{product_step} {last_step}", value


def add_sub(rng: random.Random) -> Problem:
  name, item = rng.choice(NAMES), rng.choice(ITEMS)
  a, b = rng.randint(5, 90), rng.randint(2, 60)
  if rng.random() < 0.5:
    c = rng.randint(1, a + b)
    question = (
      f"{name} has {a} {item}. {name} finds {b} more {item} and then gives {c} {item} to a friend. "
      f"How many {item} does {name} have now?"
    )
    first, total = _add_step(a, b)
    second, answer = _sub_step(total, c)
  else:
    b = rng.randint(1, a)
    c = rng.randint(2, 60)
    question = (
      f"{name} has {a} {item}. {name} loses {b} {item} and then buys {c} more. "
      f"How many {item} does {name} have now?"
    )
    first, rest = _sub_step(a, b)
    second, answer = _add_step(rest, c)
  return Problem(question, f"{first} {second}", answer)


def mul_div(rng: random.Random) -> Problem:
  name, item, container = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CONTAINERS)
  n, m = rng.randint(2, 12), rng.randint(2, 25)
  if rng.random() < 0.5:
    question = (
      f"There are {n} {container} with {m} {item} in each. How many {item} are there in total?"
    )
    step, answer = _mul_step(n, m)
  else:
    question = f"{name} shares {n * m} {item} equally among {n} friends. How many {item} does each friend get?"
    step, answer = f"{n * m} / {n} = {m}.", m
  return Problem(question, step, answer)


def linear_equation(rng: random.Random) -> Problem:
  a, x, b = rng.randint(2, 12), rng.randint(1, 20), rng.choice([1, -1]) * rng.randint(1, 50)
  c = a * x + b
  steps, answer = _solve_linear(a, b, c)
  return Problem(f"Solve for x: {_signed(a, 'x', b)} = {c}.", steps, answer)


def evaluate_expression(rng: random.Random) -> Problem:
  a, x, b = rng.randint(2, 12), rng.randint(1, 20), rng.choice([1, -1]) * rng.randint(1, 50)
  steps, answer = _evaluate_steps(a, b, x)
  return Problem(f"Evaluate {_signed(a, 'x', b)} when x = {x}.", steps, answer)


def groups_then_change(rng: random.Random) -> Problem:
  name, item, container = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CONTAINERS)
  n, m = rng.randint(2, 12), rng.randint(2, 25)
  first, total = _mul_step(n, m)
  if rng.random() < 0.5:
    c = rng.randint(1, total)
    question = (
      f"{name} has {n} {container} with {m} {item} in each. {name} gives {c} {item} to a friend. "
      f"How many {item} does {name} have now?"
    )
    second, answer = _sub_step(total, c)
  else:
    c = rng.randint(2, 60)
    question = (
      f"{name} has {n} {container} with {m} {item} in each. {name} finds {c} more {item}. "
      f"How many {item} does {name} have now?"
    )
    second, answer = _add_step(total, c)
  return Problem(question, f"{first} {second}", answer)


def cost_equation(rng: random.Random) -> Problem:
  name, (single, plural), extra = rng.choice(NAMES), rng.choice(PRICED_ITEMS), rng.choice(EXTRAS)
  a, x, b = rng.randint(2, 12), rng.randint(1, 20), rng.randint(1, 30)
  c = a * x + b
  question = (
    f"{name} buys {a} {plural} and {extra} that costs {b} dollars. {name} pays {c} dollars in total. "
    f"How many dollars does one {single} cost?"
  )
  steps, answer = _solve_linear(a, b, c)
  return Problem(question, f"Let x be the cost of one {single}. {a}x + {b} = {c}. {steps}", answer)


def solve_then_evaluate(rng: random.Random) -> Problem:
  a, x, b = rng.randint(2, 12), rng.randint(1, 20), rng.choice([1, -1]) * rng.randint(1, 50)
  d, e = rng.randint(2, 12), rng.choice([1, -1]) * rng.randint(1, 50)
  c = a * x + b
  solve, _ = _solve_linear(a, b, c)
  evaluate, answer = _evaluate_steps(d, e, x)
  return Problem(
    f"If {_signed(a, 'x', b)} = {c}, what is {_signed(d, 'x', e)}?", f"{solve} {evaluate}", answer
  )


FAMILIES: dict[str, Callable[[random.Random], Problem]] = {
  "add_sub": add_sub,
  "mul_div": mul_div,
  "linear_equation": linear_equation,
  "evaluate_expression": evaluate_expression,
  "groups_then_change": groups_then_change,
  "cost_equation": cost_equation,
  "solve_then_evaluate": solve_then_evaluate,
}
