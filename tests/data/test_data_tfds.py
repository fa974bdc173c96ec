"""Tests for the TFDS loaders, without network and without tensorflow.

Two fakes are used: ``tfds.testing.mock_data`` (random examples through the
``tfds.data_source`` path), and real ``array_record`` files written on disk by a
subclass of the TFDS builder whose generator yields small random PNG images
instead of downloading, which exercises the exact on-disk read path.
"""

import importlib.util
import io
import json
import os

import numpy as np
import pytest

import nnopt.data as nd
from nnopt.data import image_sources

tfds = pytest.importorskip("tensorflow_datasets")
PIL_Image = pytest.importorskip("PIL.Image")


@pytest.fixture(autouse=True)
def _only_tfds_places(monkeypatch):
  """The IDX places of the look-up (NNOPT_DATA_DIR, Debian's Fashion-MNIST)
  would win over the mocked or fake TFDS data; these tests are about TFDS."""
  monkeypatch.delenv(nd.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(image_sources, "SYSTEM_DIRS", {})


def _fake_builder(tfds_name, num_train, num_test):
  """A TFDS builder writing `tfds_name`'s files from seeded random images."""
  base = type(tfds.builder(tfds_name, data_dir="/nonexistent"))

  class Fake(base, skip_registration=True):
    name = tfds_name

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(num_train, 0),
              "test": self._generate_examples(num_test, 1)}

    def _generate_examples(self, n, split_seed):
      shape = self.info.features["image"].shape
      for i, image in enumerate(_fake_images(n, shape, split_seed)):
        buf = io.BytesIO()
        PIL_Image.fromarray(image.squeeze(-1) if shape[-1] == 1 else image
                            ).save(buf, format="png")
        example = {"image": buf.getvalue(), "label": i % 10}
        if "id" in self.info.features:
          example["id"] = f"{split_seed}_{i}"
        yield i, example

  return Fake


def _fake_images(n, shape, split_seed):
  rng = np.random.default_rng(split_seed)
  return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _prepare(tfds_name, data_dir, num_train=20, num_test=7):
  builder = _fake_builder(tfds_name, num_train, num_test)(
      data_dir=os.fspath(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return builder


@pytest.mark.parametrize("name,shape,classes", [
    ("mnist", (28, 28, 1), 10),
    ("cifar10", (32, 32, 3), 10),
    ("fashion_mnist", (28, 28, 1), 10),
    ("kmnist", (28, 28, 1), 10),
    ("cifar100", (32, 32, 3), 100),
    ("svhn_cropped", (32, 32, 3), 10),
])
def test_mock_data_loading(name, shape, classes):
  with tfds.testing.mock_data(num_examples=9):
    ds = nd.load_dataset(name, data_dir="/nonexistent/tfds", max_test=4)
  assert ds.name == name and ds.num_classes == classes
  assert ds.x_train.shape == (9, *shape) and ds.x_test.shape == (4, *shape)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
  assert ds.x_train.max() > 0.5  # Really scaled from uint8, not all zero.
  assert np.all((0 <= ds.y_train) & (ds.y_train < classes))
  assert ds.meta["reader"] == "data_source" and not ds.meta["normalized"]


def test_mock_data_normalize_cifar10():
  with tfds.testing.mock_data(num_examples=6):
    raw = nd.load_dataset("cifar10", data_dir="/nonexistent")
    norm = nd.load_dataset("cifar10", data_dir="/nonexistent", normalize=True)
  mean = np.array([0.4914, 0.4822, 0.4465], np.float32)
  std = np.array([0.2023, 0.1994, 0.2010], np.float32)
  np.testing.assert_allclose(norm.x_train, (raw.x_train - mean) / std,
                             rtol=1e-5, atol=1e-5)
  assert norm.meta["mean"] == pytest.approx(tuple(mean))


def test_on_disk_array_record_mnist(tmp_path, monkeypatch):
  _prepare("mnist", tmp_path)
  monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(tmp_path))
  ds = nd.load_dataset("mnist")  # data_dir from TFDS_DATA_DIR
  assert ds.meta["data_dir"] == os.fspath(tmp_path)
  assert ds.meta["reader"] == "data_source"
  assert (ds.num_train, ds.num_test) == (20, 7)
  assert ds.x_train.shape == (20, 28, 28, 1)
  want = _fake_images(20, (28, 28, 1), 0)
  # TFDS shuffles at preparation: compare as sets of (image, label) pairs.
  got = {(x.tobytes(), int(y)) for x, y in
         zip(np.rint(ds.x_train * 255).astype(np.uint8), ds.y_train)}
  assert got == {(x.tobytes(), i % 10) for i, x in enumerate(want)}
  small = nd.load_dataset("mnist", data_dir=tmp_path, max_train=5, max_test=3)
  assert (small.num_train, small.num_test) == (5, 3)
  np.testing.assert_array_equal(small.x_train, ds.x_train[:5])


def test_on_disk_array_record_cifar10(tmp_path):
  _prepare("cifar10", tmp_path, num_train=6, num_test=3)
  ds = nd.load_dataset("cifar10", data_dir=tmp_path)
  assert ds.x_train.shape == (6, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
  assert sorted(ds.y_train.tolist()) == list(range(6))


def test_missing_data_error_names_dataset_dir_and_command(tmp_path):
  missing = tmp_path / "no_data_here"
  with pytest.raises(nd.DatasetError) as err:
    nd.load_dataset("cifar10", data_dir=missing)
  message = str(err.value)
  assert isinstance(err.value, ValueError)
  assert "'cifar10'" in message
  assert os.fspath(missing) in message
  assert (f"tfds build cifar10 --data_dir={missing} "
          f"--file_format=array_record") in message
  assert "pip install tensorflow tensorflow-datasets array_record" in message


def test_missing_data_error_mentions_env_var(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", os.fspath(tmp_path))
  with pytest.raises(nd.DatasetError, match="TFDS_DATA_DIR") as err:
    nd.load_dataset("svhn")
  assert "tfds build svhn_cropped" in str(err.value)
  assert nd.resolve_data_dir(None)[0] == os.fspath(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="tensorflow installed: tfrecord data are readable")
def test_tfrecord_data_without_tensorflow_is_explained(tmp_path):
  builder = _prepare("mnist", tmp_path, num_train=3, num_test=2)
  info_path = os.path.join(builder.data_dir, "dataset_info.json")
  with open(info_path) as f:
    info = json.load(f)
  info["fileFormat"] = "tfrecord"
  with open(info_path, "w") as f:
    json.dump(info, f)
  with pytest.raises(nd.DatasetError, match="tfrecord") as err:
    nd.load_dataset("mnist", data_dir=tmp_path)
  assert "tensorflow" in str(err.value)
  assert "--file_format=array_record" in str(err.value)


def test_bad_options():
  with pytest.raises(nd.DatasetError, match="max_train"):
    nd.load_dataset("mnist", data_dir="/nonexistent", max_train=0)
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(nd.DatasetError, match="3 entries"):
      nd.load_dataset("cifar10", data_dir="/x", normalize=True, mean=(0.5, 0.5))
