"""Tests of the config schema, overrides, validation, spec, build and table."""

from __future__ import annotations

import copy
import json
import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import config as C
from nnopt.config import optimizers as O
from nnopt.engine.trainer import Trainer
from nnopt.hooks import Hook

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.py"))


def small_config():
  c = C.base_config()
  c.dataset.name = "spiral"
  c.dataset.options = dict(n_per_class=40)
  c.model.options = dict(widths=(8, 2), activation="tanh")
  c.optimizer.options = dict(momentum=0.9)
  c.train.batch_size = 16
  c.train.num_steps = 3
  c.train.num_epochs = None
  c.variants = dict(
      plain=dict(optimizer=dict(name="sgd", learning_rate=0.5)),
      adam=dict(optimizer=dict(name="adam", learning_rate=0.01)),
  )
  c.quick = dict(train=dict(num_steps=2))
  return c


# -- config files ----------------------------------------------------------------


def test_configs_exist():
  names = {p.stem for p in CONFIGS}
  assert {"quickstart", "digits_mlp", "vgg_cifar10"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_every_config_variant_validates(path, quick):
  name, config = C.load_config_file(path)
  assert name
  for variant in C.variant_names(config):
    resolved = C.resolve(config, variant, quick=quick)
    assert resolved["dataset"]["name"]
    C.validate(resolved)  # idempotent on a resolved config


def distinct_variants(config, quick=True):
  """One variant per distinct (dataset, model, optimizer, hooks)."""
  chosen = {}
  for variant in C.variant_names(config):
    r = C.resolve(config, variant, quick=quick)
    key = json.dumps([r["dataset"]["name"], r["model"], r["optimizer"]["name"],
                      sorted(r["optimizer"]["options"]),
                      [h["name"] for h in r["hooks"]]],
                     sort_keys=True)
    chosen.setdefault(key, variant)
  return list(chosen.values())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_builds_quick(path):
  _, config = C.load_config_file(path)
  datasets = {}
  for variant in distinct_variants(config):
    resolved = C.resolve(config, variant, quick=True)
    key = C.dataset_key(resolved)
    if key not in datasets:
      datasets[key] = C.load_dataset(resolved)
    exp = C.build(resolved, dataset=datasets[key])
    assert isinstance(exp.optimizer, optax.GradientTransformation)
    assert len(exp.hooks) == len(resolved["hooks"])


def test_quickstart_layout():
  _, config = C.load_config_file(REPO / "configs" / "quickstart.py")
  assert C.variant_names(config) == ["sgd", "adam", "msvag", "frobenius",
                                     "fixed", "sensli"]
  adam = C.resolve(config, "adam")
  assert adam["optimizer"]["name"] == "adam"
  assert adam["train"]["eval_every"] == 50
  assert C.resolve(config, "adam", quick=True)["train"]["num_steps"] == 200
  sensli = C.resolve(config, "sensli")
  assert sensli["model"]["options"]["widths"] == (5, 2)
  assert sensli["hooks"][0]["name"] == "sensli"
  assert list(C.panels(config).values()) == [
      ["sgd", "adam", "msvag", "frobenius"], ["fixed", "sensli"]]


def test_vgg_config_full_is_thesis_net_and_quick_is_digits():
  _, config = C.load_config_file(REPO / "configs" / "vgg_cifar10.py")
  full = C.resolve(config)
  assert full["dataset"]["name"] == "cifar10"
  assert full["model"]["options"]["stages"] == ((64,), (128,), (256,))
  assert full["dataset"]["augment"] == "crop_flip"
  quick = C.resolve(config, quick=True)
  assert quick["dataset"]["name"] == "digits"
  assert quick["dataset"]["options"] == {}  # options are replaced whole
  assert quick["dataset"]["augment"] is None


# -- resolution -------------------------------------------------------------------


def test_defaults_cover_schema():
  d = C.defaults()
  assert set(d) == {k for k in C.SCHEMA}
  assert d["train"]["batch_size"] == 128 and d["optimizer"]["options"] == {}


def test_variant_merge_and_options_replaced_whole():
  c = small_config()
  plain = C.resolve(c, "plain")
  assert plain["optimizer"] == {"name": "sgd", "learning_rate": 0.5,
                                "options": {"momentum": 0.9}}
  c.variants.adam.optimizer.options = dict(b1=0.8)
  adam = C.resolve(c, "adam")
  assert adam["optimizer"]["options"] == {"b1": 0.8}
  assert adam["model"]["options"]["widths"] == (8, 2)


def test_quick_then_set_order():
  c = small_config()
  assert C.resolve(c, "plain", quick=True)["train"]["num_steps"] == 2
  r = C.resolve(c, "plain", quick=True, overrides=["train.num_steps=7"])
  assert r["train"]["num_steps"] == 7
  # A base --set wins over a variant; variants.NAME.… targets one variant.
  r = C.resolve(c, "adam", overrides=["optimizer.learning_rate=0.2"])
  assert r["optimizer"]["learning_rate"] == 0.2
  sets = ["variants.adam.optimizer.learning_rate=0.3"]
  assert C.resolve(c, "adam", overrides=sets)["optimizer"][
      "learning_rate"] == 0.3
  assert C.resolve(c, "plain", overrides=sets)["optimizer"][
      "learning_rate"] == 0.5
  r = C.resolve(c, "plain", quick=True, overrides=["quick.train.num_steps=5"])
  assert r["train"]["num_steps"] == 5


def test_set_into_options_and_schedule_dicts():
  c = small_config()
  c.optimizer.learning_rate = dict(schedule="cosine_decay_schedule",
                                   init_value=0.1, decay_steps=10)
  c.variants = {}
  r = C.resolve(c, overrides=["optimizer.learning_rate.init_value=0.3",
                              "model.options.use_bias=False",
                              "dataset.options.noise=0.1"])
  assert r["optimizer"]["learning_rate"]["init_value"] == 0.3
  assert r["model"]["options"]["use_bias"] is False
  assert r["dataset"]["options"]["noise"] == 0.1


def test_no_variants_is_default():
  c = small_config()
  c.variants = {}
  assert C.variant_names(c) == ["default"]
  assert C.resolve(c)["optimizer"]["name"] == "sgd"


def test_variant_order():
  c = small_config()
  assert C.variant_names(c) == ["adam", "plain"]  # ConfigDict sorts keys
  c.variant_order = ["plain"]
  assert C.variant_names(c) == ["plain", "adam"]
  c.variant_order = ["nope"]
  with pytest.raises(C.ConfigError, match="unknown variant"):
    C.variant_names(c)


@pytest.mark.parametrize("text,value", [
    ("0.1", 0.1), ("3", 3), ("adam", "adam"), ("[1, 2]", [1, 2]),
    ("None", None), ("null", None), ("true", True), ("False", False),
    ("{'schedule': 'constant_schedule', 'value': 1.0}",
     {"schedule": "constant_schedule", "value": 1.0}),
    ("a b", "a b"),
])
def test_parse_value(text, value):
  assert C.parse_value(text) == value


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("override,match", [
    ("train.batchsize=3", r"unknown config key 'train.batchsize'.*"
     r"train.batch_size"),
    ("trian.seed=1", r"unknown config key 'trian.seed'.*train.seed"),
    ("train.batch_size=abc", r"train.batch_size must be int or None, got "
     r"'abc' \(str\)"),
    ("train.eval_train=1", r"train.eval_train must be bool"),
    ("train=3", "section"),
    ("dataset.name=imagenet", r"dataset.name: Unknown dataset 'imagenet'.*"
     r"spiral"),
    ("dataset.options.flaten=True", r"dataset 'spiral' has no option"),
    ("dataset.options.n_per_class='many'", r"dataset.options.n_per_class"),
    ("dataset.augment=flip", r"one of \[None, 'crop_flip'\]"),
    ("model.name=mlp", r"model.name: unknown model 'mlp'.*fnn"),
    ("model.options.width=3", r"no option\(s\) \['width'\].*widths"),
    ("model.options.widths='8,2'", r"model.options.widths must be "
     r"tuple\[int, ...\]"),
    ("loss=hinge", r"loss: unknown loss 'hinge'.*softmax_cross_entropy"),
    ("optimizer.name=adamm", r"unknown optimizer 'adamm' \(did you mean "
     r"'adam'.*known:.*sgd"),
    ("optimizer.options.momentun=0.9", r"no option\(s\) \['momentun'\].*"
     r"momentum"),
    ("optimizer.options.nesterov='yes'", r"'nesterov' must be bool"),
    ("optimizer.learning_rate='fast'", r"learning_rate must be"),
    ("optimizer.learning_rate={'schedule':'cosine'}",
     r"unknown learning-rate schedule 'cosine'"),
    ("optimizer.learning_rate={'schedule':'cosine_decay_schedule',"
     "'init_value':0.1}", r"needs option\(s\) \['decay_steps'\]"),
    ("train.num_steps=0", r"train.num_steps must be a positive integer"),
    ("train.buckets=[8,-1]", r"train.buckets"),
    ("hooks=[{'name':'nohook'}]", r"unknown hook 'nohook'"),
    ("variants.nope.train.seed=1", r"unknown variant 'nope'"),
    ("variants.adam.optimizer.lr=1", r"variants.adam.optimizer.lr.*did you "
     r"mean 'variants.adam.optimizer"),
    ("quick.train.num_step=1", r"quick.train.num_steps"),
])
def test_errors_name_key_and_allowed_values(override, match):
  with pytest.raises(C.ConfigError, match=match):
    C.resolve(small_config(), "plain", overrides=[override])


def test_both_stop_criteria_missing():
  with pytest.raises(C.ConfigError, match="num_steps or train.num_epochs"):
    C.resolve(small_config(), "plain",
              overrides=["train.num_steps=None", "train.num_epochs=None"])


def test_unknown_top_level_key_in_file_config():
  c = small_config().to_dict()
  c["trainer"] = {}
  with pytest.raises(C.ConfigError, match="unknown config key 'trainer'.*"
                     "train"):
    C.resolve(c, "plain")


def test_bad_override_syntax():
  with pytest.raises(C.ConfigError, match="KEY=VALUE"):
    C.parse_override("train.seed")
  with pytest.raises(C.ConfigError, match="empty key"):
    C.parse_override("train..seed=1")


def test_load_config_file_errors(tmp_path):
  with pytest.raises(C.ConfigError, match="does not exist"):
    C.load_config_file(tmp_path / "missing.py")
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  with pytest.raises(C.ConfigError, match="syntax error"):
    C.load_config_file(bad)
  empty = tmp_path / "empty.py"
  empty.write_text("x = 1\n")
  with pytest.raises(C.ConfigError, match="no get_config"):
    C.load_config_file(empty)
  raises = tmp_path / "raises.py"
  raises.write_text("def get_config():\n  raise KeyError('boom')\n")
  with pytest.raises(C.ConfigError, match="KeyError"):
    C.load_config_file(raises)
  plain = tmp_path / "plain.py"
  plain.write_text("def get_config():\n  return {'name': 'mine'}\n")
  assert C.load_config_file(plain)[0] == "mine"


# -- spec --------------------------------------------------------------------------


def test_resolve_gives_a_frozen_spec():
  spec = C.resolve(small_config(), "plain")
  assert isinstance(spec, C.Spec)
  with pytest.raises(TypeError, match="read-only"):
    spec["train"]["num_steps"] = 5
  with pytest.raises(TypeError, match="read-only"):
    spec["optimizer"]["options"].update(momentum=0.5)
  assert json.loads(json.dumps(spec))["optimizer"]["options"] == {
      "momentum": 0.9}
  assert C.resolve(spec, overrides=["train.seed=3"])["train"]["seed"] == 3
  assert spec["train"]["seed"] == 0
  assert copy.deepcopy(spec) is spec
  again = pickle.loads(pickle.dumps(spec))
  assert isinstance(again, C.Spec) and again == spec


def test_build_takes_only_a_spec():
  with pytest.raises(TypeError, match="Spec of nnopt.config.resolve"):
    C.build(small_config())
  with pytest.raises(TypeError, match="Spec"):
    C.build(C.to_plain(C.resolve(small_config(), "plain")))


def test_learning_rate_is_checked_once_per_run(monkeypatch):
  calls = []
  check = O.check_learning_rate
  monkeypatch.setattr(O, "check_learning_rate",
                      lambda lr: calls.append(lr) or check(lr))
  C.build(C.resolve(small_config(), "plain", quick=True))
  assert calls == [0.5]


# -- build -----------------------------------------------------------------------


def build(config, variant=None, **kwargs):
  return C.build(C.resolve(config, variant, **kwargs))


def test_build_and_train_two_steps(tmp_path):
  exp = build(small_config(), "adam", quick=True)
  assert exp.dataset.num_train == 60
  assert exp.trainer_kwargs["num_steps"] == 2
  trainer = exp.trainer(str(tmp_path), progress=False)
  assert isinstance(trainer, Trainer)
  trainer.fit()
  assert trainer.history[-1]["step"] == 2
  assert (tmp_path / "metrics.jsonl").exists()


def test_build_checks_model_output_against_dataset():
  with pytest.raises(C.ConfigError, match="has 5 outputs but dataset "
                     "'spiral' has 2 classes"):
    build(small_config(), "plain", overrides=["model.options.widths=[8, 5]"])


def test_build_checks_model_input_shape():
  c = small_config()
  with pytest.raises(C.ConfigError, match="cannot take inputs of shape"):
    build(c, "plain", overrides=["model.name=vgg",
                                 "model.options={'n_classes': 2}"])


def test_build_schedule_and_augment():
  c = small_config()
  c.variants = {}
  c.optimizer.learning_rate = dict(
      schedule="piecewise_constant_schedule", init_value=0.1,
      boundaries_and_scales={"2": 0.5})
  exp = build(c)
  params = {"w": jnp.ones(3)}
  state = exp.optimizer.init(params)
  updates, _ = exp.optimizer.update({"w": jnp.ones(3)}, state, params)
  np.testing.assert_allclose(updates["w"], -0.1 * jnp.ones(3), rtol=1e-6)
  c = C.base_config()
  c.dataset.name = "digits"
  c.dataset.augment = "crop_flip"
  c.dataset.augment_options = dict(padding=2)
  c.model.name = "vgg"
  c.model.options = dict(stages=((4,),), fc=(8,), n_classes=10)
  exp = build(c)
  x = exp.dataset.x_train[:4]
  out = exp.augment(x, np.random.default_rng(0))
  assert out.shape == x.shape and not np.array_equal(out, x)


def test_autoencoder_targets_are_the_flattened_inputs():
  c = C.base_config()
  c.dataset.name = "digits"
  c.dataset.targets = "inputs"
  c.model.options = dict(widths=(16, 64), activation="sigmoid")
  c.loss = "squared_error"
  spec = C.resolve(c)
  plain = C.load_dataset(C.resolve(c, overrides=["dataset.targets=None"]))
  exp = C.build(spec)
  ds = exp.dataset
  assert ds.name == "digits_autoencoder" and ds.task == "regression"
  assert ds.num_classes is None and ds.meta["autoencoder"]
  np.testing.assert_array_equal(ds.x_train, ds.y_train)
  np.testing.assert_array_equal(
      ds.x_test, plain.x_test.reshape(len(plain.x_test), -1))
  assert C.dataset_key(spec) != C.dataset_key(C.resolve(
      c, overrides=["dataset.targets=None"]))
  with pytest.raises(C.ConfigError, match="dataset.targets must be one of"):
    C.resolve(c, overrides=["dataset.targets='labels'"])


def test_lbfgs_without_learning_rate():
  c = small_config()
  exp = build(c, "plain", overrides=[
      "optimizer.name=lbfgs", "optimizer.learning_rate=None",
      "optimizer.options={}"])
  assert isinstance(exp.optimizer, optax.GradientTransformation)


# -- the table --------------------------------------------------------------------


def test_optax_aliases_in_the_table():
  for name in ("sgd", "adam", "adamw", "rmsprop", "lbfgs", "adagrad", "lion",
               "sign_sgd", "prodigy"):
    assert name in C.OPTIMIZERS
  assert "scale_by_learning_rate" not in C.OPTIMIZERS
  assert "cosine_decay_schedule" in C.SCHEDULES
  assert "momentum" in O.optimizer_options("sgd")


def test_nnopt_names_in_the_table():
  for name in ("msgd", "sign_sgd", "msign_sgd", "svag", "msvag", "msvag_mb",
               "adam_star", "l1_sign_gd", "block_normalized_gd",
               "coordinate_descent", "diag_ef", "cabs_sgd", "frobenius_sgd",
               "kfac", "inner_product_sgd", "mgopt"):
    assert name in C.OPTIMIZERS, name
  assert C.OPTIMIZERS["sign_sgd"].__module__.startswith("nnopt.")
  assert {"odenet", "conv_pool_net", "wide_resnet", "char_lstm", "fnn",
          "resnet", "vgg"} <= set(C.MODELS)
  assert set(C.HOOKS) == {"sensli", "mlsgd", "cabs", "competitor",
                          "reduce_on_plateau"}


def test_add_optimizer_and_options_by_signature():
  def my_sgd(learning_rate, *, damping: float = 0.0):
    return optax.chain(optax.add_decayed_weights(damping),
                       optax.scale_by_learning_rate(learning_rate))

  C.add("optimizer", "test_my_sgd", my_sgd)
  try:
    with pytest.raises(C.ConfigError, match="already in the table"):
      C.add("optimizer", "test_my_sgd", my_sgd)
    opt = O.make_optimizer("test_my_sgd", 0.1, damping=0.5)
    params = {"w": jnp.ones(2)}
    updates, _ = opt.update({"w": jnp.zeros(2)}, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.05 * jnp.ones(2))
    with pytest.raises(C.OptimizerError, match="no option"):
      O.make_optimizer("test_my_sgd", 0.1, dampnig=0.5)
    c = small_config()
    r = C.resolve(c, "plain", overrides=["optimizer.name=test_my_sgd",
                                         "optimizer.options={'damping':1e-4}"])
    assert r["optimizer"]["name"] == "test_my_sgd"
  finally:
    del C.OPTIMIZERS["test_my_sgd"]
  with pytest.raises(C.OptimizerError, match="learning_rate"):
    C.add("optimizer", "bad", lambda lr: optax.sgd(lr))
  with pytest.raises(C.ConfigError, match="unknown kind 'optimiser'.*"
                     "'optimizer'"):
    C.add("optimiser", "x", optax.sgd)


class _CountSteps(Hook):

  def __init__(self, every: int = 1, *, dataset=None, make_optimizer=None):
    self.every, self.dataset, self.steps = every, dataset, 0
    self.make_optimizer = make_optimizer

  def on_step(self, run, metrics):
    self.steps += 1


def test_hook_in_the_table_gets_the_run_arguments_it_declares():
  C.add("hook", "test_count", _CountSteps)
  try:
    c = small_config()
    c.hooks = [dict(name="test_count", options=dict(every=2))]
    exp = build(c, "plain", quick=True)
    (hook,) = exp.hooks
    assert hook.every == 2 and hook.dataset is exp.dataset
    other = hook.make_optimizer(0.1)  # the run's optimizer at another rate
    params = {"w": jnp.ones(2)}
    updates, _ = other.update({"w": jnp.ones(2)}, other.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * jnp.ones(2), rtol=1e-6)
    exp.trainer(progress=False).fit()
    assert hook.steps == 2
    with pytest.raises(C.ConfigError, match="has no option"):
      C.resolve(c, "plain", overrides=["hooks=[{'name': 'test_count', "
                                       "'options': {'evry': 2}}]"])
    with pytest.raises(C.ConfigError, match="from the run"):
      C.resolve(c, "plain", overrides=["hooks=[{'name': 'test_count', "
                                       "'options': {'dataset': 'x'}}]"])
  finally:
    del C.HOOKS["test_count"]


def test_optimizer_factory_gets_the_run_arguments_it_declares():
  seen = {}

  def probe_sgd(learning_rate, *, scale: float = 1.0, model=None, loss=None,
                named_optimizer=None):
    seen.update(model=model, loss=loss, inner=named_optimizer("sgd", 0.5))
    return optax.sgd(learning_rate * scale)

  C.add("optimizer", "test_probe", probe_sgd)
  try:
    exp = build(small_config(), "plain", quick=True,
                overrides=["optimizer.name=test_probe"])
    assert seen["model"] is exp.model and seen["loss"] is exp.loss
    assert isinstance(seen["inner"], optax.GradientTransformation)
    with pytest.raises(C.ConfigError, match=r"optimizer: .*\['model'\] "
                       r"come\(s\) from the run"):
      C.resolve(small_config(), "plain", overrides=[
          "optimizer.name=test_probe", "optimizer.options={'model': 1}"])
  finally:
    del C.OPTIMIZERS["test_probe"]


def test_jax_devices_available():
  assert jax.devices()
