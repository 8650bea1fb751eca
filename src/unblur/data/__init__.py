"""Datasets for training and evaluation: synthetic pairs from sharp images, paired benchmark folders."""
from .folders import list_images  # noqa: F401
from .paired import LAYOUTS, PairedFolderDataset, find_pairs  # noqa: F401
from .synthetic import SyntheticBlurDataset, holdout_split  # noqa: F401
