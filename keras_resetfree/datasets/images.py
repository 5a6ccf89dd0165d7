"""MNIST and Fashion-MNIST: the IDX files of a local folder, else `keras.datasets`."""

import gzip

import numpy as np

from keras_resetfree.datasets.paths import data_dir

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path):
    """Reads a (gzipped) IDX file into a numpy array (uint8 data)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file.")
    rank = data[3]
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)
    )
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: {body.size} values for shape {shape}.")
    return body.reshape(shape)


def _load(name, keras_loader, path):
    try:
        root = data_dir(name, path)
    except FileNotFoundError:
        if path is not None:
            raise
        return keras_loader()
    return tuple(
        (read_idx(root / images), read_idx(root / labels))
        for images, labels in _FILES.values()
    )


def load_mnist(path=None):
    """`((x_train, y_train), (x_test, y_test))`, uint8 28x28 images, as `keras.datasets.mnist`."""
    import keras

    return _load("mnist", keras.datasets.mnist.load_data, path)


def load_fashion_mnist(path=None):
    """`((x_train, y_train), (x_test, y_test))`, as `keras.datasets.fashion_mnist`."""
    import keras

    return _load("fashion-mnist", keras.datasets.fashion_mnist.load_data, path)
