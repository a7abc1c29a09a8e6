"""The config a run saved, for runs that must match it: ``--config=configs/from_run.py:<workdir>``.

Returns ``<workdir>/config.json`` as a ConfigDict whose every field is overridable with its type,
so a cooldown branch (``launch.branches``) starts from exactly its stable run's config and changes
only what ``--config.<section>.<field>`` overrides name.
"""


def get_config(workdir: str):
  # Imported here so that merely listing configs does not load JAX.
  from nexus.train import checkpoint_eval  # pylint: disable=g-import-not-at-top
  from nexus.train import schema  # pylint: disable=g-import-not-at-top

  return schema.to_config_dict(schema.from_config_dict(checkpoint_eval.load_run_config(workdir)))
