"""nnopt.data: embedded, synthetic, IDX and TFDS datasets, and host-side samplers.

Datasets are in-memory :class:`Dataset` objects from :func:`load_dataset`;
batches are index sets from :class:`EpochSampler`, gathered on the host with
:func:`gather`. Nothing here imports the rest of nnopt.
"""

from nnopt.data.augment import CropFlip
from nnopt.data.augment import random_crop_flip
from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.dataset import MissingDataError
from nnopt.data.embedded import DIGITS_SPLIT_SEED
from nnopt.data.embedded import DIGITS_TEST_SIZE
from nnopt.data.embedded import load_digits
from nnopt.data.embedded import load_spiral
from nnopt.data.embedded import spiral_points
from nnopt.data.idx import read_idx
from nnopt.data.image_sources import DATA_DIR_ENV
from nnopt.data.image_sources import IDX_DATASETS
from nnopt.data.image_sources import load_image_dataset
from nnopt.data.registry import KNOWN_DATASETS
from nnopt.data.registry import available_datasets
from nnopt.data.registry import dataset_options
from nnopt.data.registry import load_dataset
from nnopt.data.registry import register_dataset
from nnopt.data.samplers import Batch
from nnopt.data.samplers import EpochSampler
from nnopt.data.samplers import bucket_for
from nnopt.data.samplers import default_buckets
from nnopt.data.samplers import gather
from nnopt.data.synthetic import load_gaussian_classes
from nnopt.data.synthetic import load_linear_regression
from nnopt.data.text import char_sequences
from nnopt.data.text import load_embedded_text
from nnopt.data.text import load_tolstoi
from nnopt.data.tfds_loader import TFDS_DATASETS
from nnopt.data.tfds_loader import load_tfds_dataset
from nnopt.data.tfds_loader import prepare_command
from nnopt.data.tfds_loader import resolve_data_dir

__all__ = [
    "char_sequences",
    "load_embedded_text",
    "load_tolstoi",
    "Batch",
    "CropFlip",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_SIZE",
    "Dataset",
    "DATA_DIR_ENV",
    "DatasetError",
    "EpochSampler",
    "IDX_DATASETS",
    "KNOWN_DATASETS",
    "MissingDataError",
    "TFDS_DATASETS",
    "available_datasets",
    "bucket_for",
    "dataset_options",
    "default_buckets",
    "gather",
    "load_dataset",
    "load_digits",
    "load_gaussian_classes",
    "load_image_dataset",
    "load_linear_regression",
    "load_spiral",
    "load_tfds_dataset",
    "prepare_command",
    "random_crop_flip",
    "read_idx",
    "register_dataset",
    "resolve_data_dir",
    "spiral_points",
]
