"""Multi-source data for Nexus: the built-in corpus, TFDS sources, pre-tokenized streams and tokenizers.

- ``make_train_stream(data_cfg, num_inner_steps=K, global_batch_size=B, seq_len=L, seed=...)``:
  outer-step batches ``{"tokens": int32[K, B_local, L+1], "source_ids": int32[K, B_local]}`` with
  checkpointable state.
- ``make_eval_batches(data_cfg, sources=[...], batch_size=..., seq_len=..., num_batches=...,
  split=...)``: fixed validation (default) or test batches per source, held-out sources included.
- ``DataConfig`` / ``validate_data_config(...)``: the ``config.data`` section and its checks.
- ``math_problems(family, split, num, seed)``: (prompt, answer) pairs for downstream exact-match
  accuracy.
- ``build_corpus(...)``: builds/caches the built-in corpus (also ``python -m launch.build_corpus``);
  ``prepare_data(data_cfg)`` also pre-tokenizes every split of every source (done on first use
  otherwise).

Training and evaluation read token ids from pre-tokenized ArrayRecord stores
(``nexus.data.token_store``); each source has train / validation / test splits, disjoint by key
(``nexus.data.splits``).

Token id 0 is padding; documents are packed as ``[BOS] text [EOS]`` (ids 1 and 2). This package does
not import the model or the optimizer.
"""

from nexus.data.builtin_sources import BUILTIN_SOURCES
from nexus.data.config import SAMPLING_MODES
from nexus.data.config import DataConfig
from nexus.data.config import all_source_names
from nexus.data.config import check_data_fields
from nexus.data.config import held_out_source_names
from nexus.data.config import train_source_names
from nexus.data.config import validate_data_config
from nexus.data.corpus import build_corpus
from nexus.data.corpus import format_summary
from nexus.data.streams import make_eval_batches
from nexus.data.streams import make_train_stream
from nexus.data.streams import prepare_data
from nexus.data.tokenizers import BOS_ID
from nexus.data.tokenizers import EOS_ID
from nexus.data.tokenizers import PAD_ID
from nexus.data.tokenizers import ByteTokenizer
from nexus.data.tokenizers import SentencePieceTokenizer
from nexus.data.tokenizers import make_tokenizer
from nexus.data.tokenizers import tokenizer_id
from nexus.data.tokenizers import train_sentencepiece
from nexus.data.word_problems import HELD_OUT_MATH_FAMILIES
from nexus.data.word_problems import TRAIN_MATH_FAMILIES
from nexus.data.word_problems import extract_answer
from nexus.data.word_problems import math_problems
