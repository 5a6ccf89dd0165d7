"""Datasets for continual inference. For now: where datasets are found."""

from keras_resetfree.datasets.paths import data_dir

__all__ = ["data_dir"]
