"""Character-sequence datasets (P4): windows, shift-by-one targets, splits,
fixed alphabets and the missing-file error."""

import numpy as np
import pytest

import nnopt.data as nd
from nnopt.data.text import ASCII_ALPHABET, char_sequences


def test_char_sequences_windows_and_targets():
  text = "abcdefghij" * 10  # 100 characters
  d = char_sequences(text, "t", seq_len=4, test_fraction=0.2)
  vocab = d.meta["vocab"]
  assert vocab == "abcdefghij" and d.num_classes == 10
  decode = lambda row: "".join(vocab[int(i)] for i in row)
  # Train: the first 80 characters -> (80 - 1) // 4 = 19 windows.
  assert d.x_train.shape == (19, 4) and d.y_train.shape == (19, 4)
  assert decode(d.x_train[0]) == "abcd" and decode(d.y_train[0]) == "bcde"
  assert decode(d.x_train[3]) == text[12:16]
  # Test starts at character 80; the splits never share a character.
  assert decode(d.x_test[0]) == text[80:84]
  assert d.x_test.shape == ((20 - 1) // 4, 4)
  np.testing.assert_array_equal(d.x_train[:, 1:], d.y_train[:, :-1])


def test_fixed_alphabet_maps_unknown_characters():
  d = char_sequences("héllo wörld\n" * 20, "t", seq_len=5,
                     alphabet=ASCII_ALPHABET)
  assert d.num_classes == 96 == len(ASCII_ALPHABET)
  text = "".join(d.meta["vocab"][int(i)] for i in d.x_train[0])
  assert text == "h?llo"


def test_embedded_text_and_errors(tmp_path):
  d = nd.load_dataset("embedded_text", seq_len=20)
  assert d.num_classes == 96 and d.x_train.shape[1] == 20
  assert d.num_train > 1000 and d.y_train.dtype == np.int32
  with pytest.raises(nd.DatasetError, match="curl"):
    nd.load_dataset("tolstoi", data_dir=str(tmp_path))
  (tmp_path / "tolstoi").mkdir()
  (tmp_path / "tolstoi" / "war_and_peace.txt").write_text(
      "Well, Prince, so Genoa and Lucca are now just family estates. " * 30)
  t = nd.load_dataset("tolstoi", data_dir=str(tmp_path), seq_len=50)
  assert t.x_train.shape[1] == 50 and t.num_classes < 40
  with pytest.raises(nd.DatasetError, match="too few"):
    char_sequences("abc", "t", seq_len=50)
