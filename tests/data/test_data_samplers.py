"""Tests for the index samplers, buckets, gather and image augmentation."""

import json

import numpy as np
import pytest

import nnopt.data as nd


def _epoch(sampler):
  return list(sampler.epoch_batches())


def test_each_example_once_per_epoch_drop_remainder():
  sampler = nd.EpochSampler(103, 10, seed=0)
  assert sampler.steps_per_epoch == 10
  for epoch in range(3):
    batches = _epoch(sampler)
    assert len(batches) == 10 and sampler.epoch == epoch + 1
    idx = np.concatenate([b.indices for b in batches])
    assert idx.dtype == np.int32 and len(np.unique(idx)) == 100
    # Exactly the first 100 entries of this epoch's permutation.
    np.testing.assert_array_equal(idx, sampler.permutation(epoch)[:100])
    assert all(b.mask.dtype == np.float32 and b.mask.all() for b in batches)
  assert sampler.examples_seen == 300 and sampler.steps == 30


def test_each_example_once_per_epoch_keep_remainder():
  sampler = nd.EpochSampler(103, 10, seed=1, drop_remainder=False)
  assert sampler.steps_per_epoch == 11
  batches = _epoch(sampler)
  assert len(batches) == 11 and sampler.epoch_done and sampler.position == 0
  last = batches[-1]
  assert last.indices.shape == (10,) and last.size == 3
  np.testing.assert_array_equal(last.mask, [1, 1, 1] + [0] * 7)
  valid = np.concatenate([b.indices[b.mask > 0] for b in batches])
  np.testing.assert_array_equal(np.sort(valid), np.arange(103))
  assert set(last.indices[3:]) <= set(last.indices[:3])


def test_determinism_and_epoch_permutations():
  a = nd.EpochSampler(50, 7, seed=5)
  b = nd.EpochSampler(50, 7, seed=5)
  c = nd.EpochSampler(50, 7, seed=6)
  seq_a = [a.next_batch().indices for _ in range(20)]
  seq_b = [b.next_batch().indices for _ in range(20)]
  seq_c = [c.next_batch().indices for _ in range(20)]
  np.testing.assert_array_equal(np.concatenate(seq_a), np.concatenate(seq_b))
  assert not np.array_equal(np.concatenate(seq_a), np.concatenate(seq_c))
  assert not np.array_equal(a.permutation(0), a.permutation(1))
  unshuffled = nd.EpochSampler(6, 3, shuffle=False)
  np.testing.assert_array_equal(unshuffled.next_batch().indices, [0, 1, 2])


def test_full_batch():
  sampler = nd.EpochSampler(17, None, seed=2)
  assert sampler.batch_size == 17 and sampler.steps_per_epoch == 1
  for epoch in range(3):
    batch = sampler.next_batch()
    assert sampler.epoch_done and sampler.epoch == epoch + 1
    np.testing.assert_array_equal(np.sort(batch.indices), np.arange(17))


def test_buckets_pad_with_valid_index_and_mask():
  sampler = nd.EpochSampler(100, 10, seed=0, buckets=(32, 8, 16))
  assert sampler.buckets == (8, 16, 32) and sampler.padded_size == 16
  batch = sampler.next_batch()
  assert batch.indices.shape == (16,) and batch.mask.shape == (16,)
  np.testing.assert_array_equal(batch.mask, [1] * 10 + [0] * 6)
  assert set(batch.indices[10:]) <= set(batch.indices[:10])
  sampler.set_batch_size(8)
  assert sampler.next_batch().indices.shape == (8,)
  sampler.set_batch_size(17)
  assert sampler.next_batch().indices.shape == (32,)
  with pytest.raises(ValueError, match="largest bucket"):
    sampler.set_batch_size(33)
  with pytest.raises(ValueError, match="dataset size"):
    nd.EpochSampler(10, 11)


def test_masked_mean_equals_real_mean():
  data = np.arange(20, dtype=np.float32) ** 2
  sampler = nd.EpochSampler(20, 6, seed=3, buckets=nd.default_buckets(20))
  for _ in range(8):
    out = nd.gather({"x": data}, sampler.next_batch())
    real = out["x"][out["mask"] > 0]
    masked = (out["x"] * out["mask"]).sum() / out["mask"].sum()
    assert masked == pytest.approx(real.mean())


def test_batch_size_change_continues_epoch():
  sampler = nd.EpochSampler(40, 10, seed=4)
  perm = sampler.permutation(0)
  first = sampler.next_batch().indices
  sampler.set_batch_size(15)
  second = sampler.next_batch().indices
  np.testing.assert_array_equal(np.concatenate([first, second]), perm[:25])
  assert sampler.position == 25 and not sampler.epoch_done
  sampler.set_batch_size(10)
  np.testing.assert_array_equal(sampler.next_batch().indices, perm[25:35])
  # 5 left < 10: with drop_remainder the epoch ended with that batch.
  assert sampler.epoch_done and sampler.epoch == 1 and sampler.position == 0
  assert sampler.examples_seen == 35
  with pytest.raises(ValueError):
    sampler.set_batch_size(0)


def test_growing_batch_skips_short_remainder():
  sampler = nd.EpochSampler(40, 15, seed=4)
  sampler.next_batch()  # position 15; 25 left >= 15, epoch continues.
  sampler.set_batch_size(30)
  batch = sampler.next_batch()
  np.testing.assert_array_equal(batch.indices, sampler.permutation(1)[:30])
  assert sampler.epoch == 2 and sampler.epoch_done  # 10 left < 30.


@pytest.mark.parametrize("buckets", [None, (4, 8, 16, 32)])
def test_resume_from_json_state_matches_uninterrupted(buckets):
  def drive(sampler, steps, start):
    out = []
    for step in range(start, start + steps):
      if step % 7 == 3:
        sampler.set_batch_size(1 + (step * 5) % 29)
      batch = sampler.next_batch()
      out.append((batch.indices.copy(), batch.mask.copy(), sampler.epoch_done))
    return out

  kwargs = dict(seed=9, drop_remainder=buckets is None, buckets=buckets)
  reference = nd.EpochSampler(37, 6, **kwargs)
  want = drive(reference, 40, 0)

  first = nd.EpochSampler(37, 6, **kwargs)
  got = drive(first, 17, 0)
  state = json.loads(json.dumps(first.state_dict()))
  resumed = nd.EpochSampler(37, 1, **kwargs)
  resumed.load_state_dict(state)
  assert resumed.state_dict() == first.state_dict()
  got += drive(resumed, 23, 17)
  assert len(got) == len(want)
  for (gi, gm, gd), (wi, wm, wd) in zip(got, want):
    np.testing.assert_array_equal(gi, wi)
    np.testing.assert_array_equal(gm, wm)
    assert gd == wd
  assert resumed.examples_seen == reference.examples_seen


def test_load_state_dict_rejects_other_sampler():
  state = nd.EpochSampler(10, 2, seed=1).state_dict()
  with pytest.raises(ValueError, match="seed"):
    nd.EpochSampler(10, 2, seed=2).load_state_dict(state)
  with pytest.raises(ValueError, match="num_examples"):
    nd.EpochSampler(11, 2, seed=1).load_state_dict(state)


def test_default_buckets():
  buckets = nd.default_buckets(1000)
  assert buckets == (8, 16, 32, 64, 128, 256, 512, 1000)
  big = nd.default_buckets(60000, min_batch=16, max_sizes=8)
  assert len(big) <= 8 and big[-1] == 60000 and list(big) == sorted(big)
  sharded = nd.default_buckets(100, multiple_of=8)
  assert all(b % 8 == 0 for b in sharded) and sharded[-1] >= 100
  assert nd.default_buckets(5) == (5,)
  assert nd.bucket_for(9, buckets) == 16 and nd.bucket_for(9, None) == 9


def test_gather_pair_and_dict():
  x = np.arange(12).reshape(6, 2)
  y = np.arange(6) * 10
  out = nd.gather((x, y), np.array([4, 1]))
  np.testing.assert_array_equal(out["x"], x[[4, 1]])
  np.testing.assert_array_equal(out["y"], [40, 10])
  np.testing.assert_array_equal(out["mask"], [1.0, 1.0])
  ds = nd.load_dataset("spiral")
  batch = nd.EpochSampler(ds.num_train, 8, buckets=(16,)).next_batch()
  out = nd.gather(ds.train_arrays, batch)
  assert out["x"].shape == (16, 2) and out["mask"].sum() == 8


def _crop_flip_oracle(image, out, padding):
  """True iff `out` is a padded-shifted (and maybe mirrored) copy of `image`."""
  h, w, _ = image.shape
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  for dy in range(2 * padding + 1):
    for dx in range(2 * padding + 1):
      crop = padded[dy:dy + h, dx:dx + w]
      if np.array_equal(crop, out) or np.array_equal(crop[:, ::-1], out):
        return True
  return False


def test_random_crop_flip_matches_oracle():
  rng = np.random.default_rng(0)
  images = rng.random((16, 6, 5, 3)).astype(np.float32)
  out = nd.random_crop_flip(images, 1, padding=2)
  assert out.shape == images.shape and out.dtype == images.dtype
  for image, aug in zip(images, out):
    assert _crop_flip_oracle(image, aug, 2)
  assert not np.array_equal(out, images)
  same = nd.random_crop_flip(images, np.random.default_rng(1), padding=0,
                             flip=False)
  np.testing.assert_array_equal(same, images)


def test_crop_flip_deterministic_per_step_and_pad_value():
  images = np.random.default_rng(0).random((8, 8, 8, 3)).astype(np.float32)
  aug = nd.CropFlip(seed=3)
  np.testing.assert_array_equal(aug(images, 5), aug(images, 5))
  assert not np.array_equal(aug(images, 5), aug(images, 6))
  norm = nd.CropFlip.for_normalized((0.5, 0.5, 0.5), (0.25, 0.5, 1.0),
                                    padding=8)
  out = norm(np.zeros((1, 4, 4, 3), np.float32), 0)
  # With padding 8 >= size, some pixel of some crop is padding for most draws;
  # every pixel is either the image (0) or the per-channel pad value.
  for c, pad in enumerate((-2.0, -1.0, -0.5)):
    assert set(np.unique(out[..., c])) <= {0.0, pad}
