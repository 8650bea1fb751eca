"""Datasets for training and evaluation: synthetic pairs from sharp images, averaged video frames, paired
benchmark folders, and weighted mixes of them."""
from .folders import list_images  # noqa: F401
from .frames import FrameAverageDataset, average_frames  # noqa: F401
from .mix import MixedDataset, real_blur_mix  # noqa: F401
from .paired import LAYOUTS, PairedFolderDataset, find_pairs  # noqa: F401
from .synthetic import SyntheticBlurDataset, holdout_split  # noqa: F401
