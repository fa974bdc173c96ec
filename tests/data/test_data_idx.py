"""The IDX reader and the MNIST/Fashion-MNIST/KMNIST look-up, on files written here.

The oracle for every file is the array the test wrote: the header is packed
with ``struct`` and the data with numpy's big-endian ``tobytes``, independent
of the reader.
"""

import gzip
import os
import struct

import numpy as np
import pytest

import nnopt.data as nd
from nnopt.data import idx
from nnopt.data import image_sources

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
          np.float32: 0x0D, np.float64: 0x0E}


def _idx_bytes(array):
  array = np.asarray(array)
  header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype.type], array.ndim)
  header += struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, array=None, *, data=None, compress=False):
  data = _idx_bytes(array) if data is None else data
  with open(path, "wb") as f:
    f.write(gzip.compress(data) if compress else data)
  return os.fspath(path)


def _fake_split(n, seed, classes=10):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
  labels = (np.arange(n) % classes).astype(np.uint8)
  return images, labels


def _write_dataset(directory, n_train=12, n_test=5, compress=True, seed=0):
  os.makedirs(directory, exist_ok=True)
  suffix = ".gz" if compress else ""
  train, test = _fake_split(n_train, seed), _fake_split(n_test, seed + 1)
  for (split, part), base in idx.IDX_FILES.items():
    array = (train if split == "train" else test)[part == "labels"]
    _write(os.path.join(directory, base + suffix), array, compress=compress)
  return train, test


@pytest.fixture(autouse=True)
def _isolated_lookup(tmp_path, monkeypatch):
  """No real data dirs leak into these tests (HOME, env, Debian path)."""
  home = tmp_path / "home"
  home.mkdir()
  monkeypatch.setenv("HOME", os.fspath(home))
  monkeypatch.delenv(nd.DATA_DIR_ENV, raising=False)
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  monkeypatch.setattr(image_sources, "SYSTEM_DIRS", {
      "fashion_mnist": (os.fspath(tmp_path / "debian" / "fashion-mnist"),
                        "dataset-fashion-mnist")})


# -- the reader ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
  rng = np.random.default_rng(3)
  want = (rng.normal(size=(4, 3, 2)) * 50).astype(dtype)
  got = nd.read_idx(_write(tmp_path / "a", want, compress=compress))
  assert got.dtype == np.dtype(dtype) and got.dtype.isnative
  np.testing.assert_array_equal(got, want)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
  want = np.arange(6, dtype=np.uint8).reshape(2, 3)
  np.testing.assert_array_equal(
      nd.read_idx(_write(tmp_path / "raw.gz", want)), want)
  np.testing.assert_array_equal(
      nd.read_idx(_write(tmp_path / "zipped", want, compress=True)), want)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("data,match", [
    (b"\x00\x00\x08", "magic number 000008"),               # short header
    (b"PK\x03\x04" + bytes(20), "magic number 504b0304"),    # a zip file
    (b"\x00\x00\x07\x01" + bytes(8), "magic number 00000701"),  # bad type
    (b"\x00\x00\x08\x03\x00\x00", "truncated inside its header"),
    (_idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5], "truncated.*needs 48 "
     "data bytes, the file has 43"),
    (_idx_bytes(np.zeros((3,), np.int32)) + b"\x00", "longer than its header"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, data, match, compress):
  path = _write(tmp_path / "bad-idx", data=data, compress=compress)
  with pytest.raises(nd.DatasetError, match=match) as err:
    nd.read_idx(path)
  assert repr(path) in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_read_idx_bad_gzip_stream(tmp_path, damage):
  zipped = gzip.compress(_idx_bytes(np.arange(4000, dtype=np.int32)))
  if damage == "truncate":
    zipped = zipped[:len(zipped) // 2]
  else:
    zipped = zipped[:20] + bytes(b ^ 0xFF for b in zipped[20:40]) + zipped[40:]
  path = _write(tmp_path / "broken.gz", data=zipped)
  with pytest.raises(nd.DatasetError, match="cannot be read") as err:
    nd.read_idx(path)
  assert repr(path) in str(err.value)


def test_count_mismatch_names_both_files(tmp_path):
  _write_dataset(tmp_path)
  labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
  _write(labels, np.zeros(4, np.uint8), compress=True)   # 5 images, 4 labels
  with pytest.raises(nd.DatasetError, match="do not match in count") as err:
    nd.load_dataset("mnist", data_dir=tmp_path)
  assert os.fspath(labels) in str(err.value)
  assert "t10k-images-idx3-ubyte.gz" in str(err.value)


def test_wrong_rank_and_label_range(tmp_path):
  _write_dataset(tmp_path)
  _write(tmp_path / "train-labels-idx1-ubyte.gz",
         np.full(12, 10, np.uint8), compress=True)
  with pytest.raises(nd.DatasetError, match="label 10, outside"):
    nd.load_dataset("mnist", data_dir=tmp_path)
  _write(tmp_path / "train-images-idx3-ubyte.gz",
         np.zeros((12, 784), np.uint8), compress=True)
  with pytest.raises(nd.DatasetError, match="not uint8 images"):
    nd.load_dataset("mnist", data_dir=tmp_path)


def test_partial_directory_is_an_error(tmp_path):
  _write_dataset(tmp_path, compress=False)
  os.remove(tmp_path / "t10k-labels-idx1-ubyte")
  with pytest.raises(nd.DatasetError, match="only part of an IDX dataset") as e:
    nd.load_dataset("mnist", data_dir=tmp_path)
  assert "t10k-labels-idx1-ubyte[.gz] missing" in str(e.value)


# -- the dataset ----------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_from_idx_files(tmp_path, compress):
  (x_tr, y_tr), (x_te, y_te) = _write_dataset(tmp_path, compress=compress)
  ds = nd.load_dataset("mnist", data_dir=tmp_path)
  assert ds.name == "mnist" and ds.num_classes == 10
  assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (5, 28, 28, 1)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  np.testing.assert_allclose(ds.x_train[..., 0], x_tr / 255.0, rtol=1e-6)
  np.testing.assert_allclose(ds.x_test[..., 0], x_te / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(ds.y_train, y_tr)
  np.testing.assert_array_equal(ds.y_test, y_te)
  assert ds.meta["source"] == "idx" and ds.meta["data_dir"] == os.fspath(tmp_path)
  assert ds.meta["found_via"].startswith("the data_dir argument")
  assert not ds.meta["normalized"]


def test_normalize_flatten_and_limits(tmp_path):
  (x_tr, _), (x_te, _) = _write_dataset(tmp_path)
  ds = nd.load_dataset("mnist", data_dir=tmp_path, normalize=True,
                       flatten=True, max_train=7, max_test=2)
  want = (x_tr[:7].reshape(7, -1) / 255.0 - 0.1307) / 0.3081
  assert ds.x_train.shape == (7, 784) and ds.x_test.shape == (2, 784)
  np.testing.assert_allclose(ds.x_train, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ds.x_test, (x_te[:2].reshape(2, -1) / 255.0 -
                                         0.1307) / 0.3081, rtol=1e-5, atol=1e-5)
  assert ds.meta["normalized"] and ds.meta["mean"] == pytest.approx((0.1307,))
  custom = nd.load_dataset("mnist", data_dir=tmp_path, normalize=True,
                           mean=(0.5,), std=(0.25,))
  np.testing.assert_allclose(custom.x_train[..., 0],
                             (x_tr / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
  with pytest.raises(nd.DatasetError, match="max_train"):
    nd.load_dataset("mnist", data_dir=tmp_path, max_train=0)
  with pytest.raises(nd.DatasetError, match="coarse_label"):
    nd.load_dataset("mnist", data_dir=tmp_path, label_key="coarse_label")


def test_same_options_for_every_image_dataset():
  assert nd.dataset_options("mnist") == nd.dataset_options("cifar10")
  assert nd.dataset_options("kmnist")["flatten"] is False
  assert "kmnist" in nd.KNOWN_DATASETS and "kmnist" in nd.IDX_DATASETS


@pytest.mark.parametrize("sub", ["fashion_mnist", "fashion-mnist"])
def test_files_in_a_subdirectory_named_after_the_dataset(tmp_path, sub):
  (x_tr, _), _ = _write_dataset(tmp_path / sub, compress=False)
  ds = nd.load_dataset("fashion_mnist", data_dir=tmp_path)
  assert ds.meta["data_dir"] == os.fspath(tmp_path / sub)
  np.testing.assert_array_equal(np.rint(ds.x_train[..., 0] * 255), x_tr)


def test_kmnist_and_dotted_spelling(tmp_path):
  directory = tmp_path / "kmnist"
  directory.mkdir()
  images, labels = _fake_split(3, 5)
  for split in ("train", "t10k"):
    _write(directory / f"{split}-images.idx3-ubyte", images)
    _write(directory / f"{split}-labels.idx1-ubyte", labels)
  ds = nd.load_dataset("KMNIST", data_dir=tmp_path)
  assert ds.name == "kmnist" and ds.num_train == 3 and ds.num_test == 3
  np.testing.assert_array_equal(ds.y_test, labels)


# -- the look-up order -----------------------------------------------------------


def test_lookup_order(tmp_path, monkeypatch):
  debian = tmp_path / "debian" / "fashion-mnist"
  env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
  for seed, directory in enumerate((debian, env_dir / "fashion_mnist",
                                    arg_dir)):
    _write_dataset(directory, n_train=10 + seed, seed=seed)

  def source():
    ds = nd.load_dataset("fmnist", data_dir=data_dir)
    return ds.meta["data_dir"], ds.num_train

  data_dir = None
  assert source() == (os.fspath(debian), 10)       # only the Debian path
  monkeypatch.setenv(nd.DATA_DIR_ENV, os.fspath(env_dir))
  assert source() == (os.fspath(env_dir / "fashion_mnist"), 11)
  data_dir = arg_dir
  assert source() == (os.fspath(arg_dir), 12)      # data_dir comes first
  # A data_dir without the dataset is passed over, not fatal.
  data_dir = tmp_path / "empty"
  assert source() == (os.fspath(env_dir / "fashion_mnist"), 11)
  # MNIST has no system directory: the Debian Fashion-MNIST files never
  # stand in for it.
  monkeypatch.delenv(nd.DATA_DIR_ENV)
  with pytest.raises(nd.MissingDataError):
    nd.load_dataset("mnist")


def test_missing_error_names_every_place_and_way(tmp_path, monkeypatch):
  monkeypatch.setenv(nd.DATA_DIR_ENV, os.fspath(tmp_path / "nnopt_data"))
  monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(tmp_path / "tfds_env"))
  given = tmp_path / "given"
  with pytest.raises(nd.MissingDataError) as err:
    nd.load_dataset("fashion_mnist", data_dir=given)
  message = str(err.value)
  assert isinstance(err.value, nd.DatasetError)
  assert message.splitlines()[0] == ("Dataset 'fashion_mnist' was not found "
                                     "(nnopt never downloads). Searched, in "
                                     "order:")
  places = [os.fspath(given), os.fspath(given / "fashion_mnist"),
            os.fspath(tmp_path / "nnopt_data"), "$NNOPT_DATA_DIR",
            os.fspath(tmp_path / "tfds_env" / "fashion_mnist"),
            "$TFDS_DATA_DIR",
            os.fspath(tmp_path / "home" / "tensorflow_datasets"),
            os.fspath(tmp_path / "debian" / "fashion-mnist")]
  for place in places:
    assert place in message, place
  for way in ("apt-get install dataset-fashion-mnist",
              "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
              "--data_dir DIR", "NNOPT_DATA_DIR=DIR",
              f"tfds build fashion_mnist --data_dir={given}"):
    assert way in message, way
  # Numbered in the documented order.
  order = [message.index(p) for p in ("1. the data_dir", "2. $NNOPT_DATA_DIR",
                                      "3. $TFDS_DATA_DIR", "4. the TFDS default",
                                      "5. the dataset-fashion-mnist")]
  assert order == sorted(order)


def test_missing_mnist_has_no_apt_advice(tmp_path):
  with pytest.raises(nd.MissingDataError) as err:
    nd.load_dataset("mnist", data_dir=tmp_path)
  assert "apt-get" not in str(err.value)
  assert "not set" in str(err.value)       # the unset environment variables
  assert "tfds build mnist" in str(err.value)


# -- a config on MNIST from IDX files ---------------------------------------------


def test_p1_config_runs_on_mnist_idx_files_via_data_dir(tmp_path):
  from nnopt import config as C  # pylint: disable=g-import-not-at-top
  (x_tr, y_tr), _ = _write_dataset(tmp_path / "idx" / "mnist", n_train=16,
                                   n_test=8)
  _, cfg = C.load_config_file(os.path.join(
      os.path.dirname(__file__), "..", "..", "configs", "balles_p1_fmnist.py"))
  spec = C.resolve(cfg, "msgd", overrides=[
      "dataset.name=mnist", f"dataset.data_dir={tmp_path / 'idx'}",
      "train.num_steps=2", "train.batch_size=8", "train.eval_every=null"])
  experiment = C.build(spec)
  ds = experiment.dataset
  assert ds.name == "mnist" and ds.meta["source"] == "idx"
  assert ds.meta["data_dir"] == os.fspath(tmp_path / "idx" / "mnist")
  np.testing.assert_allclose(ds.x_train[..., 0], x_tr / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(ds.y_train, y_tr)
  trainer = experiment.trainer(progress=False)
  trainer.fit()
  assert trainer.history[-1]["step"] == 2
  assert np.isfinite(trainer.history[-1]["train_loss"])
