"""Experiment configs: the schema, the table of names, resolution and `build`.

An experiment config is a Python file whose ``get_config()`` returns an
``ml_collections.ConfigDict`` (or a plain dict) with this layout; every key is
optional and defaults to the value shown:

.. code-block:: python

    name = None                  # display name (default: the file's stem)
    description = ''
    dataset = dict(name='spiral',        # nnopt.data.available_datasets()
                   data_dir=None,        # data dir (else $TFDS_DATA_DIR, ...)
                   seed=0,
                   options={},           # loader options, e.g. flatten=True
                   augment=None,         # None or 'crop_flip' (images)
                   augment_options={},   # e.g. padding=4, flip=True
                   targets=None)         # 'inputs': an autoencoder's targets
    model = dict(name='fnn',             # nnopt.config.table.MODELS
                 options={})             # dataclass fields, e.g. widths=(32, 2)
    loss = 'softmax_cross_entropy'       # nnopt.config.table.LOSSES
    optimizer = dict(name='sgd',         # nnopt.config.table.OPTIMIZERS
                     learning_rate=0.01, # number, None, or a schedule:
                     #   {'schedule': 'cosine_decay_schedule',
                     #    'init_value': 0.1, 'decay_steps': 1000}
                     options={})         # e.g. momentum=0.9
    train = dict(batch_size=128,         # None: full batch
                 num_steps=None, num_epochs=1,   # the first reached stops
                 seed=0, eval_every=None, eval_train=False,
                 eval_batch_size=1000, log_every=1,
                 checkpoint_every=None, buckets=None)
    hooks = []                           # [{'name': ..., 'options': {...}}]
    variants = {}                        # name -> partial config (see below)
    variant_order = []                   # run/plot order (ConfigDict sorts keys)
    panels = []                          # figure rows: [(title, [variant, ...])]
    quick = {}                           # partial config applied by --quick

What the step captures for the optimizer (layer statistics, Fisher samples)
is not configured: the engine reads it from the optimizer's declared needs
(:mod:`nnopt.stats.needs`).

A run of variant ``v`` uses ``defaults ← config ← variants[v] ← quick (with
--quick) ← --set overrides``: partial configs merge section by section; an
``options`` dict is replaced as a whole, and a partial config or ``--set`` that
changes a section's ``name`` (or ``dataset.augment``) without giving new
options drops the old ones (a variant that switches to Adam does not inherit
SGD's ``momentum``). A config without variants has
the single variant ``'default'``. ``--set variants.adam.optimizer.learning_rate=0.1``
changes one variant; ``--set optimizer.learning_rate=0.1`` changes every run.

:func:`resolve` merges, validates (once) and freezes one variant into a
read-only :class:`Spec` without touching data; :func:`build` takes only a
spec (and optionally its already loaded dataset) and returns an
:class:`Experiment`, from which :meth:`Experiment.trainer` makes the
:class:`nnopt.engine.trainer.Trainer`:

.. code-block:: python

    name, config = load_config_file('configs/quickstart.py')
    spec = resolve(config, 'adam', quick=True, overrides=['train.seed=1'])
    build(spec).trainer(progress=False).fit()

Names map to plain factories in :mod:`nnopt.config.table`; a factory that
needs the run's model, loss or dataset declares a parameter of that name
(:mod:`nnopt.config.signatures`). Every mistake (unknown name, key or option,
wrong type) is a :class:`ConfigError` whose message names the key and the
allowed values. A user adds a name with :func:`add`.
"""

from nnopt.config.build import Experiment, build
from nnopt.config.datasets import dataset_key, load_dataset
from nnopt.config.errors import ConfigError, OptimizerError
from nnopt.config.files import load_config_file
from nnopt.config.optimizers import make_optimizer
from nnopt.config.overrides import (Override, apply_overrides, parse_override,
                                    parse_value)
from nnopt.config.resolve import (DEFAULT_VARIANT, panels, resolve,
                                  variant_names)
from nnopt.config.schema import (SCHEMA, SPECIAL_KEYS, Field, Options,
                                 base_config, defaults, schema_paths, to_plain)
from nnopt.config.spec import Spec
from nnopt.config.table import (HOOKS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES,
                                add, lookup)
from nnopt.config.validation import validate

__all__ = [
    "ConfigError", "DEFAULT_VARIANT", "Experiment", "Field", "HOOKS", "LOSSES",
    "MODELS", "OPTIMIZERS", "OptimizerError", "Options", "Override", "SCHEDULES",
    "SCHEMA", "SPECIAL_KEYS", "Spec", "add", "apply_overrides", "base_config",
    "build",
    "dataset_key", "defaults", "load_config_file", "load_dataset", "lookup",
    "make_optimizer", "panels", "parse_override", "parse_value", "resolve",
    "schema_paths", "to_plain", "validate", "variant_names",
]
