"""Tables 4.2–4.4 reproduced exactly from grown models (spec §2.10, §4.2)."""

import jax.numpy as jnp

from nnopt import growth
from nnopt.models import FNN, VGG, ResNet, init_params


def _insert_all_phases(model, input_shape, picks):
  """Architectures after inserting the candidates ``picks`` (indices) in turn,
  plus the fully extended networks of each evaluation."""
  params = init_params(model, __import__("jax").random.key(0),
                       jnp.zeros((1, *input_shape)))
  archs, evals = [model], []
  for pick in picks:
    ext, _, cands = growth.fully_extend(model, params)
    evals.append(ext)
    model, params = growth.insert(model, params, [cands[pick]])
    archs.append(model)
  return archs, evals


def test_table_4_3_parameter_counts():
  (f1, f2), _ = _insert_all_phases(FNN((5, 2)), (2,), [0])
  assert (growth.param_count(f1, (2,)), growth.param_count(f2, (2,))) == (27, 57)
  (r1, r2), _ = _insert_all_phases(ResNet(3, 1, 2), (2,), [0])
  assert (growth.param_count(r1, (2,)), growth.param_count(r2, (2,))) == (33, 54)
  (c1, c2), _ = _insert_all_phases(VGG(), (32, 32, 3), [0])
  assert growth.param_count(c1, (32, 32, 3)) == 2_674_816
  assert growth.param_count(c2, (32, 32, 3)) == 2_711_744


def test_table_4_4_flops():
  (f1, f2), (fe,) = _insert_all_phases(FNN((5, 2)), (2,), [0])
  shape = (2,)
  assert growth.run_flops([(1850, f1)], [], shape)["total"] == 222_000
  assert growth.run_flops([(1850, f2)], [], shape)["total"] == 499_500
  li = growth.run_flops([(450, f1), (1400, f2)], [fe], shape)
  assert (li["total"], li["evaluation"]) == (432_270, 270)
  assert round(100 * li["evaluation_share"], 2) == 0.06
  (r1, r2), (re,) = _insert_all_phases(ResNet(3, 1, 2), (2,), [0])
  assert growth.run_flops([(1850, r1)], [], shape)["total"] == 333_000
  assert growth.run_flops([(1850, r2)], [], shape)["total"] == 532_800  # 532 000 printed
  li = growth.run_flops([(450, r1), (1400, r2)], [re], shape)
  assert (li["total"], li["evaluation"]) == (484_488, 288)
  img = (32, 32, 3)
  (c1, c2), (ce,) = _insert_all_phases(VGG(), img, [0])
  assert growth.forward_flops(c1, img) == 83_988_480
  assert growth.forward_flops(c2, img) - growth.forward_flops(c1, img) == 75_497_472
  assert growth.run_flops([(100, c1)], [], img)["total"] == 25_196_544_000
  assert growth.run_flops([(100, c2)], [], img)["total"] == 47_845_785_600
  li = growth.run_flops([(50, c1), (50, c2)], [ce], img)
  assert (li["total"], li["evaluation"]) == (37_452_607_488, 931_442_688)
  assert round(100 * li["evaluation_share"], 1) == 2.5


def test_table_4_2_flops_three_insertions():
  archs, evals = _insert_all_phases(ResNet(3, 1, 2), (2,), [0, 1, 2])
  shape = (2,)
  assert growth.run_flops([(500, archs[0])], [], shape)["total"] == 90_000
  assert growth.run_flops([(500, archs[3])], [], shape)["total"] == 252_000
  li = growth.run_flops(list(zip([100, 100, 100, 200], archs)), evals, shape)
  assert (li["total"], li["evaluation"]) == (188_712, 1512)
  assert round(100 * li["evaluation_share"], 1) == 0.8


def test_equal_cost_of_the_three_vgg_positions():
  img = (32, 32, 3)
  base = growth.forward_flops(VGG(), img)
  params = init_params(VGG(), __import__("jax").random.key(0), jnp.zeros((1, *img)))
  for cand in growth.candidates(VGG()):
    grown, _ = growth.insert(VGG(), params, [cand])
    assert growth.forward_flops(grown, img) - base == 75_497_472
