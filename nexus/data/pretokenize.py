"""Pre-tokenizes the splits of every source once (built-in or TFDS) and caches their token stores.

A split's store lives at ``<corpus_dir>/tokens/<tokenizer id>/<label>-<split>-<key>/`` where the key
hashes everything its tokens depend on (the TFDS dataset, its data_dir, the split, the feature, the
number of examples and the store format), and the tokenizer id names the tokenizer ('byte', or
'sp-' and a hash of the SentencePiece model file). Training and evaluation read only these stores; a
missing one is built on first use (every split of the source at once, one progress line per source).
"""

import hashlib
import os
import re
import time

from nexus.data import corpus
from nexus.data import sources as sources_lib
from nexus.data import splits
from nexus.data import token_store
from nexus.data import tokenizers

TOKENS_DIR = "tokens"
_READ_BATCH = 512  # documents per TFDS read while tokenizing


def tokens_root(corpus_dir: str) -> str:
  """Where every token store of ``corpus_dir`` lives."""
  return os.path.join(os.path.expanduser(corpus_dir), TOKENS_DIR)


def _store_path(
  corpus_dir: str,
  spec: sources_lib.SourceSpec,
  split_name: str,
  num_examples: int,
  tokenizer_id: str,
) -> str:
  identity = "\n".join(
    map(
      str,
      (
        token_store.FORMAT_VERSION,
        spec.tfds_name,
        spec.data_dir,
        split_name,
        spec.feature,
        num_examples,
      ),
    )
  )
  key = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
  readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{spec.label}-{split_name}")
  return os.path.join(tokens_root(corpus_dir), tokenizer_id, f"{readable}-{key}")


def _documents(data_source, spec: sources_lib.SourceSpec, tokenizer, damaged):
  """``[BOS] ids [EOS]`` of every document of ``data_source`` in stored order."""
  for start in range(0, len(data_source), _READ_BATCH):
    try:
      examples = data_source.__getitems__(
        list(range(start, min(start + _READ_BATCH, len(data_source))))
      )
    except (OSError, RuntimeError) as error:
      raise damaged(error) from None
    for example in examples:
      yield tokenizer.encode_document(example[spec.feature])


def _roles(spec: sources_lib.SourceSpec) -> list[str]:
  return [role for role in splits.SPLITS if role != splits.TEST or spec.test_split is not None]


def token_stores(
  data_cfg, specs: list[sources_lib.SourceSpec], split: str
) -> list[token_store.TokenStore]:
  """The token store of split ``split`` ('train', 'validation' or 'test') of every spec.

  Builds what is missing first: the built-in corpus if a spec needs it, then every split of a source
  at once (one progress line per source). Raises a one-line ValueError naming the cache and the fix
  when a cache on disk is damaged.
  """
  wanted = {
    spec.label: sources_lib.split_name(spec, split) for spec in specs
  }  # a missing test split fails here
  tokenizer = tokenizers.make_tokenizer(
    data_cfg.tokenizer
  )  # a bad tokenizer fails before any build
  tokenizer_id = tokenizers.tokenizer_id(data_cfg.tokenizer)
  if any(spec.builtin for spec in specs):
    corpus.build_corpus(
      data_cfg.corpus_dir, bytes_per_source=data_cfg.corpus_bytes_per_source, seed=data_cfg.seed
    )
  rebuild = corpus.rebuild_command(
    data_cfg.corpus_dir, bytes_per_source=data_cfg.corpus_bytes_per_source, seed=data_cfg.seed
  )
  stores = []
  for spec in specs:

    def damaged(error, spec=spec):
      if spec.builtin:
        return ValueError(
          f"the corpus cache {spec.data_dir} is damaged ({token_store.first_line(error)}); "
          f"rebuild it with `{rebuild}`."
        )
      return ValueError(
        f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) cannot be read "
        f"({token_store.first_line(error)}); re-prepare it with `tfds build --file_format=array_record`."
      )

    paths, missing = {}, {}
    for role in _roles(spec):
      name = sources_lib.split_name(spec, role)
      try:
        data_source = sources_lib.open_split(spec, name)
      except (OSError, RuntimeError) as error:
        raise damaged(error) from None
      paths[name] = _store_path(data_cfg.corpus_dir, spec, name, len(data_source), tokenizer_id)
      if not token_store.is_complete(paths[name]):
        missing[name] = data_source
    if missing:
      start, built = time.time(), []
      for name, data_source in missing.items():
        meta = token_store.write_store(
          paths[name],
          _documents(data_source, spec, tokenizer, damaged),
          vocab_size=tokenizer.vocab_size,
          description={"source": spec.label, "split": name, "tokenizer": tokenizer_id},
        )
        built.append(f"{name} {meta['num_tokens']:,}")
      print(
        f"tokenized {spec.label} ({tokenizer_id}): {' / '.join(built)} tokens in {time.time() - start:.1f}s",
        flush=True,
      )
    path = paths[wanted[spec.label]]
    try:
      stores.append(token_store.TokenStore(path))
    except token_store.DamagedStoreError as error:
      raise ValueError(
        f"the token cache {path} is damaged ({error}); delete it (rm -r {path}) and rerun to "
        f"rebuild it, or rebuild every cache with `{rebuild}`."
      ) from None
  return stores
