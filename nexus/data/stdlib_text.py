"""Real text that ships with every Python installation: the standard library's source and docs.

- ``code_documents``: Python source of the standard library modules (minus a held-out fifth).
- ``docstring_documents``: the docstrings of that held-out fifth of the modules, as English API
  prose whose code the model never sees (an out-of-distribution source).
- ``prose_documents``: the Python Language Reference topics of ``pydoc_data.topics`` (English prose
  with grammar snippets).

Documents are chunks of at most ``MAX_DOCUMENT_CHARS`` cut at paragraph / top-level-statement
boundaries, keyed by their file or topic, so a whole file or topic lands in one split. Modules and
topics are visited in hash order: a byte budget takes a reproducible, unbiased subset. The text
depends on the Python version (its standard library), which is why the corpus cache is keyed by it.
"""

import ast
from collections.abc import Iterator
import hashlib
import os
import sysconfig
import warnings

from nexus.data import splits

MAX_DOCUMENT_CHARS = 4000
DOCSTRING_MODULE_PERCENT = 20
MIN_DOCSTRING_CHARS = 40
_SKIPPED_DIRS = frozenset(
  {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)


def stdlib_dir() -> str:
  return sysconfig.get_paths()["stdlib"]


def _is_docstring_module(relpath: str) -> bool:
  digest = int.from_bytes(hashlib.sha256(("docstrings:" + relpath).encode()).digest()[:8], "big")
  return digest % 100 < DOCSTRING_MODULE_PERCENT


def stdlib_modules(*, docstring_modules: bool) -> list[str]:
  """Relative paths of the stdlib .py files in one group (code or held-out docstrings), hash order."""
  root = stdlib_dir()
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(
      d for d in subdirs if d not in _SKIPPED_DIRS and not d.startswith("config-")
    )
    for name in files:
      if name.endswith(".py") and not name.startswith("_sysconfigdata"):
        relpath = os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
        if _is_docstring_module(relpath) == docstring_modules:
          found.append(relpath)
  return sorted(found, key=splits.hash_order)


def _read(relpath: str) -> str | None:
  try:
    with open(os.path.join(stdlib_dir(), relpath), encoding="utf-8") as f:
      return f.read()
  except (OSError, UnicodeDecodeError):
    return None


def chunk_text(text: str, max_chars: int = MAX_DOCUMENT_CHARS) -> list[str]:
  """Splits ``text`` into pieces of at most ``max_chars`` whose concatenation is ``text``.

  Cuts prefer blank-line boundaries before an unindented line (paragraphs, top-level statements),
  then line boundaries, then raw characters for a single over-long line.
  """
  lines = text.splitlines(keepends=True)
  blocks: list[str] = []
  for i, line in enumerate(lines):
    starts_block = i > 0 and not lines[i - 1].strip() and line.strip() and not line[0].isspace()
    if starts_block or not blocks:
      blocks.append(line)
    else:
      blocks[-1] += line
  pieces = []
  for block in blocks:
    if len(block) <= max_chars:
      pieces.append(block)
      continue
    for line in block.splitlines(keepends=True):
      pieces.extend(line[i : i + max_chars] for i in range(0, len(line), max_chars))
  chunks: list[str] = []
  for piece in pieces:
    if chunks and len(chunks[-1]) + len(piece) <= max_chars:
      chunks[-1] += piece
    else:
      chunks.append(piece)
  return chunks


def code_documents() -> Iterator[tuple[str, str]]:
  """(key, chunk) of the standard library's source code, keyed by module path."""
  for relpath in stdlib_modules(docstring_modules=False):
    source = _read(relpath)
    if source:
      for chunk in chunk_text(source):
        yield relpath, chunk


def _docstrings(tree: ast.Module, module: str) -> Iterator[tuple[str, str]]:
  """(qualified name, cleaned docstring) of a module and its classes and functions, in source order."""
  stack: list[tuple[ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, str]] = [
    (tree, module)
  ]
  while stack:
    node, name = stack.pop()
    doc = ast.get_docstring(node, clean=True)
    if doc and len(doc) >= MIN_DOCSTRING_CHARS:
      yield name, doc
    children = [
      c
      for c in ast.iter_child_nodes(node)
      if isinstance(c, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    stack.extend((child, f"{name}.{child.name}") for child in reversed(children))


def docstring_documents() -> Iterator[tuple[str, str]]:
  """(key, text) docstrings of the held-out modules: ``qualified.name`` line, blank line, docstring."""
  for relpath in stdlib_modules(docstring_modules=True):
    source = _read(relpath)
    if not source:
      continue
    module = relpath[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    except SyntaxError:
      continue
    for name, doc in _docstrings(tree, module):
      for chunk in chunk_text(f"{name}\n\n{doc}\n"):
        yield relpath, chunk


def prose_documents() -> Iterator[tuple[str, str]]:
  """(key, chunk) of the Python Language Reference topics that pydoc ships, keyed by topic."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top

  for name in sorted(topics.topics, key=splits.hash_order):
    for chunk in chunk_text(topics.topics[name]):
      yield "topic:" + name, chunk
