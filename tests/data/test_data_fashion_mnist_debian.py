"""The real Fashion-MNIST files of Debian's ``dataset-fashion-mnist`` package.

CI installs the package (``.ci/run``), so there these tests read the real
files; elsewhere they skip with a reason when the files are absent, and under
``CI=true`` their absence is a failure. The checksums pin the package's
files (the original Zalando release, 2017).
"""

import hashlib
import os

import numpy as np
import optax
import pytest

import nnopt.data as nd
from nnopt import losses
from nnopt.data import image_sources
from nnopt.engine.trainer import Trainer
from nnopt.models.deepobs import PRESETS, ConvPoolNet

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz":
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz":
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz":
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


@pytest.fixture(scope="module")
def debian_dir():
  missing = [f for f in SHA256 if not os.path.isfile(os.path.join(DEBIAN_DIR,
                                                                  f))]
  if missing:
    reason = (f"Fashion-MNIST files {missing} are not in {DEBIAN_DIR}; "
              f"apt-get install dataset-fashion-mnist provides them")
    if os.environ.get("CI") == "true":
      pytest.fail(f"under CI=true: {reason} (.ci/run installs it)")
    pytest.skip(reason)
  assert image_sources.SYSTEM_DIRS["fashion_mnist"][0] == DEBIAN_DIR
  return DEBIAN_DIR


@pytest.fixture(scope="module")
def fmnist(debian_dir):
  # Found with no setting at all: the Debian directory is on the look-up.
  mp = pytest.MonkeyPatch()
  for var in (nd.DATA_DIR_ENV, "TFDS_DATA_DIR"):
    mp.delenv(var, raising=False)
  mp.setenv("HOME", "/nonexistent-home")
  try:
    yield nd.load_dataset("fashion_mnist")
  finally:
    mp.undo()


@pytest.mark.parametrize("name", sorted(SHA256))
def test_checksums(debian_dir, name):
  with open(os.path.join(debian_dir, name), "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == SHA256[name]


def test_shapes_and_class_counts(fmnist, debian_dir):
  assert fmnist.meta["source"] == "idx"
  assert fmnist.meta["data_dir"] == debian_dir
  assert fmnist.x_train.shape == (60000, 28, 28, 1)
  assert fmnist.x_test.shape == (10000, 28, 28, 1)
  assert fmnist.x_train.dtype == np.float32 and fmnist.y_train.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(fmnist.y_train), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(fmnist.y_test), [1000] * 10)
  assert fmnist.x_train.min() == 0.0 and fmnist.x_train.max() == 1.0
  # The published training mean/std that `normalize` uses.
  assert fmnist.x_train.mean() == pytest.approx(0.2860, abs=5e-4)
  assert fmnist.x_train.std() == pytest.approx(0.3530, abs=5e-4)


def test_p1_network_trains(debian_dir):
  # As configs/balles_p1_fmnist.py: pixels in [0, 1], Adam at its winner.
  ds = nd.load_dataset("fashion_mnist", data_dir=debian_dir, max_test=640)
  _, options = PRESETS["p1_fmnist"]
  trainer = Trainer(ConvPoolNet(**options), losses.softmax_cross_entropy,
                    optax.adam(1e-3), ds, batch_size=64, num_steps=30,
                    seed=0, log_every=1, progress=False)
  trainer.fit()
  loss = np.array([r["train_loss"] for r in trainer.history])
  assert len(loss) == 30 and np.all(np.isfinite(loss))
  # From chance (ln 10 = 2.30) clearly down within 30 steps of batch 64.
  assert loss[:3].mean() > 1.8
  assert loss[-5:].mean() < loss[:5].mean() - 0.5
  assert trainer.history[-1]["test_accuracy"] > 0.4
