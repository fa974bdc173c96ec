"""Experiment configs: the schema, overrides, validation and `build`.

An experiment config is a Python file whose ``get_config()`` returns an
``ml_collections.ConfigDict`` (or a plain dict) with this layout; every key is
optional and defaults to the value shown:

.. code-block:: python

    name = None                  # display name (default: the file's stem)
    description = ''
    dataset = dict(name='spiral',        # nnopt.data.available_datasets()
                   data_dir=None,        # TFDS data dir (else $TFDS_DATA_DIR)
                   seed=0,
                   options={},           # loader options, e.g. flatten=True
                   augment=None,         # None or 'crop_flip' (images)
                   augment_options={})   # e.g. padding=4, flip=True
    model = dict(name='fnn',             # nnopt.models.MODELS
                 options={})             # dataclass fields, e.g. widths=(32, 2)
    loss = 'softmax_cross_entropy'       # nnopt.losses.LOSSES
    optimizer = dict(name='sgd',         # nnopt.config.optimizers.OPTIMIZERS
                     learning_rate=0.01, # number, None, or a schedule:
                     #   {'schedule': 'cosine_decay_schedule',
                     #    'init_value': 0.1, 'decay_steps': 1000}
                     options={})         # e.g. momentum=0.9
    train = dict(batch_size=128,         # None: full batch
                 num_steps=None, num_epochs=1,   # the first reached stops
                 seed=0, eval_every=None, eval_train=False,
                 eval_batch_size=1000, log_every=1,
                 checkpoint_every=None, buckets=None)
    capture = dict(stats=False, fisher_samples=0)
    hooks = []                           # [{'name': ..., 'options': {...}}]
    variants = {}                        # name -> partial config (see below)
    variant_order = []                   # run/plot order (ConfigDict sorts keys)
    quick = {}                           # partial config applied by --quick

A run of variant ``v`` uses ``defaults ← config ← variants[v] ← quick (with
--quick) ← --set overrides``: partial configs merge section by section; an
``options`` dict is replaced as a whole, and a partial config or ``--set`` that
changes a section's ``name`` (or ``dataset.augment``) without giving new
options drops the old ones (a variant that switches to Adam does not inherit
SGD's ``momentum``). A config without variants has
the single variant ``'default'``. ``--set variants.adam.optimizer.learning_rate=0.1``
changes one variant; ``--set optimizer.learning_rate=0.1`` changes every run.

:func:`resolve` produces one plain, validated dict per variant without
touching data; :func:`build` loads the dataset and returns an
:class:`Experiment`, from which :meth:`Experiment.trainer` makes the
:class:`nnopt.engine.trainer.Trainer`. Every mistake (unknown name, key or option, wrong
type) is a :class:`ConfigError` whose message names the key and the allowed
values. Loop hooks join configs through :func:`register_hook`, optimizers
through :func:`nnopt.config.optimizers.register_optimizer`.

This module is the public interface; the code lives in :mod:`nnopt.config`.
"""

from nnopt.config.build import (Experiment, build, dataset_key,
                                    load_config_file, load_dataset)
from nnopt.config.overrides import (Override, apply_overrides,
                                        parse_override, parse_value, resolve,
                                        variant_names)
from nnopt.config.schema import (DEFAULT_VARIANT, SCHEMA, ConfigError,
                                     Field, Options, base_config, defaults,
                                     schema_paths, to_plain)
from nnopt.config.validation import (HOOKS, get_hook, register_hook,
                                         validate)

__all__ = [
    "ConfigError", "DEFAULT_VARIANT", "Experiment", "Field", "HOOKS",
    "Options", "Override", "SCHEMA", "apply_overrides", "base_config", "build",
    "dataset_key", "defaults", "get_hook", "load_config_file", "load_dataset",
    "parse_override", "parse_value", "register_hook", "resolve",
    "schema_paths", "to_plain", "validate", "variant_names",
]
