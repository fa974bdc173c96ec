"""Identity insertion: the network function is unchanged (Kreis (4.11), (4.13), (4.15))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import growth
from nnopt.models import FNN, VGG, ResNet, init_params


def _apply(model, params, x):
  return jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x)


def _grown(model, x, key=0, **kw):
  params = init_params(model, jax.random.key(key), x[:1])
  ext_model, ext_params, cands = growth.fully_extend(model, params, **kw)
  return params, ext_model, ext_params, cands


def test_fnn_identity_insertion_preserves_function():
  model = FNN((7, 6, 3), init_scheme="pytorch")
  x = jax.random.normal(jax.random.key(1), (64, 4))
  params, ext_model, ext_params, cands = _grown(model, x)
  assert [c.after for c in cands] == ["dense_0", "dense_1"]
  assert ext_model.widths == (7, 7, 6, 6, 3)
  np.testing.assert_allclose(_apply(ext_model, ext_params, x),
                             _apply(model, params, x), atol=1e-6)
  # the old keys are untouched, only keys are added
  for name in params:
    assert ext_params[name] is params[name]


def test_fnn_insertion_before_first_layer_is_rejected_and_would_change_function():
  model = FNN((5, 2))
  x = jax.random.normal(jax.random.key(1), (64, 2))  # negative coordinates
  params = init_params(model, jax.random.key(0), x[:1])
  bad = growth.Candidate("dense_in", "input", "fnn", 2, 0)
  with pytest.raises(growth.GrowthError, match="not a valid position"):
    growth.insert(model, params, [bad])
  bad_model, bad_params = growth.insert_unchecked(model, params, [bad])
  diff = jnp.max(jnp.abs(_apply(bad_model, bad_params, x) - _apply(model, params, x)))
  assert diff > 1e-3  # relu(I x) != x for x < 0


def test_identity_insertion_needs_relu():
  model = FNN((5, 2), activation="tanh")
  with pytest.raises(growth.GrowthError, match="needs ReLU"):
    growth.candidates(model)


@pytest.mark.parametrize("positions", growth.RESNET_POSITIONS)
@pytest.mark.parametrize("form", ["thesis", "reference"])
def test_resnet_identity_insertion_preserves_function(positions, form):
  model = ResNet(width=3, n_blocks=2, n_outputs=2, form=form)
  x = jax.random.normal(jax.random.key(1), (64, 2))
  params, ext_model, ext_params, cands = _grown(model, x,
                                                resnet_positions=positions)
  assert len(cands) == (3 if positions == "after_input_and_each_block" else 2)
  assert ext_model.n_blocks == 2 + len(cands)
  np.testing.assert_allclose(_apply(ext_model, ext_params, x),
                             _apply(model, params, x), atol=1e-6)


def test_vgg_identity_insertion_preserves_function():
  model = VGG(stages=((4,), (6,), (8,)), fc=(16,), n_classes=3)
  x = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
  params, ext_model, ext_params, cands = _grown(model, x)
  assert ext_model.stages == ((4, 4), (6, 6), (8, 8))
  np.testing.assert_allclose(_apply(ext_model, ext_params, x),
                             _apply(model, params, x), atol=1e-5)
  # repeated insertion: the new conv gets a candidate after it too
  m2, p2 = growth.insert(model, params, [cands[1].name])
  cands2 = growth.candidates(m2)
  assert [c.after for c in cands2] == ["conv_0_0", "conv_1_0", cands[1].name,
                                       "conv_2_0"]
  assert len({c.name for c in cands2} | set(growth.architecture.all_names(m2))) == 8
  m3, p3, _ = growth.fully_extend(m2, p2)
  np.testing.assert_allclose(_apply(m3, p3, x), _apply(model, params, x),
                             atol=1e-5)


def test_insert_rejects_unknown_position_and_duplicates():
  model = ResNet(width=3, n_blocks=1, n_outputs=2)
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 2)))
  with pytest.raises(growth.GrowthError, match="valid candidates"):
    growth.insert(model, params, ["block_7"])
  name = growth.candidates(model)[0].name
  with pytest.raises(growth.GrowthError, match="twice"):
    growth.insert(model, params, [name, name])


def test_layer_input_shapes_give_conv_resolutions():
  model = VGG(stages=((4,), (6,), (8,)), fc=(16,), n_classes=3)
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  shapes = growth.layer_input_shapes(model, params, (32, 32, 3))
  assert shapes["conv_0_0"] == (32, 32, 3)
  assert shapes["conv_1_0"] == (16, 16, 4)
  assert shapes["conv_2_0"] == (8, 8, 6)
  assert shapes["fc_0"] == (4 * 4 * 8,)
