"""Builds the built-in corpus once per (version, Python, seed, size) and caches it on disk.

Layout::

    <corpus_dir>/v2-py3.11.7-seed0-2000000B/
        nexus_corpus/<source>/1.1.0/*.array_record-*   (TFDS, one config per source)
        summary.json                                    (documents, bytes, tokens per source and split)

A build writes into a private temporary directory and renames it into place, so concurrent builders
(several processes of one job) never see a half-built corpus; ``summary.json`` marks a finished one.
A build prints one line per source (TFDS's progress bars and banners are off). A cache that cannot
be read is reported in one line with the command that rebuilds it (``rebuild_command``).
"""

import json
import os
import platform
import shutil
import tempfile
import time

import tensorflow_datasets as tfds

from nexus.data import builtin_sources
from nexus.data import splits
from nexus.data import tfds_corpus

CORPUS_VERSION = 2  # part of the cache key: bump whenever the generated content changes
SUMMARY_FILE = "summary.json"


def corpus_path(corpus_dir: str, *, bytes_per_source: int, seed: int) -> str:
  """The cache directory of one corpus (the TFDS ``data_dir`` of its sources)."""
  name = f"v{CORPUS_VERSION}-py{platform.python_version()}-seed{seed}-{bytes_per_source}B"
  return os.path.join(os.path.expanduser(corpus_dir), name)


def rebuild_command(corpus_dir: str, *, bytes_per_source: int, seed: int) -> str:
  """The shell command that deletes and rebuilds this corpus cache (and the token caches beside it)."""
  return (
    f"python -m launch.build_corpus --corpus_dir={corpus_dir} --bytes_per_source={bytes_per_source} "
    f"--seed={seed} --rebuild"
  )


def _prepare_source(
  name: str, data_dir: str, *, bytes_per_source: int, seed: int
) -> dict[str, dict[str, int]]:
  start = time.time()
  builder = tfds_corpus.NexusCorpus(
    config=name,
    data_dir=data_dir,
    file_format="array_record",
    bytes_per_source=bytes_per_source,
    seed=seed,
  )
  builder.download_and_prepare(download_dir=os.path.join(data_dir, "downloads"))
  stats = {}
  for split in splits.SPLITS:
    source = builder.as_data_source(split=split)
    num_bytes = sum(len(source[i][tfds_corpus.TEXT_FEATURE]) for i in range(len(source)))
    # Byte-tokenizer tokens: one per UTF-8 byte plus BOS and EOS per document.
    stats[split] = {
      "documents": len(source),
      "bytes": num_bytes,
      "tokens": num_bytes + 2 * len(source),
    }
  sizes = " / ".join(f"{split} {stats[split]['documents']:,} docs" for split in splits.SPLITS)
  print(f"corpus: built {name} ({sizes}) in {time.time() - start:.1f}s", flush=True)
  return stats


def build_corpus(corpus_dir: str, *, bytes_per_source: int, seed: int) -> dict:
  """Builds (or finds cached) every built-in source; returns the summary with ``path`` and ``cached``.

  Args:
    corpus_dir: parent directory of the cache (``config.data.corpus_dir``).
    bytes_per_source: UTF-8 bytes per source over the three splits (80% train, 10% validation, 10% test); a real-text
      source smaller than this is taken whole.
    seed: seed of the generated sources (``config.data.seed``); the real-text sources do not depend on it.
  """
  if (
    not isinstance(bytes_per_source, int) or bytes_per_source < builtin_sources.MIN_BYTES_PER_SOURCE
  ):
    raise ValueError(
      f"corpus bytes_per_source={bytes_per_source!r} is too small; use at least "
      f"{builtin_sources.MIN_BYTES_PER_SOURCE} so that every validation and test split has documents."
    )
  path = corpus_path(corpus_dir, bytes_per_source=bytes_per_source, seed=seed)
  summary_file = os.path.join(path, SUMMARY_FILE)
  cached = os.path.exists(summary_file)
  if not cached:
    tfds.disable_progress_bar()  # one line per source instead
    os.makedirs(os.path.dirname(path), exist_ok=True)
    start = time.time()
    building = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(path))
    try:
      sources = {
        name: {
          "held_out": source.held_out,
          "licence": source.licence,
          "splits": _prepare_source(name, building, bytes_per_source=bytes_per_source, seed=seed),
        }
        for name, source in builtin_sources.BUILTIN_SOURCES.items()
      }
      shutil.rmtree(os.path.join(building, "downloads"), ignore_errors=True)
      summary = {
        "bytes_per_source": bytes_per_source,
        "seed": seed,
        "python": platform.python_version(),
        "build_seconds": round(time.time() - start, 2),
        "sources": sources,
      }
      with open(os.path.join(building, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
      os.rename(building, path)
    except OSError:
      if not os.path.exists(summary_file):  # not a concurrent builder that finished first
        raise
    finally:
      shutil.rmtree(building, ignore_errors=True)
  try:
    with open(summary_file, encoding="utf-8") as f:
      summary = json.load(f)
  except (OSError, ValueError) as error:
    raise ValueError(
      f"the corpus cache {path} is damaged ({type(error).__name__} in {SUMMARY_FILE}); rebuild it "
      f"with `{rebuild_command(corpus_dir, bytes_per_source=bytes_per_source, seed=seed)}`."
    ) from None
  summary["path"] = path
  summary["cached"] = cached
  return summary


def format_summary(summary: dict) -> str:
  """A table of documents, bytes and byte tokens per source and split."""
  lines = [
    f"Nexus corpus at {summary['path']} (seed {summary['seed']}, Python {summary['python']})",
    f"{'source':16s} {'role':9s} {'split':10s} {'documents':>10s} {'bytes':>12s} {'tokens':>12s}",
  ]
  for name, source in summary["sources"].items():
    role = "held-out" if source["held_out"] else "train"
    for split, stats in source["splits"].items():
      lines.append(
        f"{name:16s} {role:9s} {split:10s} {stats['documents']:>10,d} {stats['bytes']:>12,d} "
        f"{stats['tokens']:>12,d}"
      )
  return "\n".join(lines)
