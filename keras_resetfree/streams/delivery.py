"""Streams as training data: `tf.data.Dataset` and `keras.utils.PyDataset` of windows."""

import keras
import numpy as np


def to_tf_dataset(stream, window, batch_size=32, shuffle=True, seed=0, stride=None):
    """A `tf.data.Dataset` of `(features, labels)` windows cut from `stream`, batched.

    Usable in `model.fit` on every backend.
    """
    import tensorflow as tf

    x, y = stream.windows(window, stride)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class StreamWindows(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of `(features, labels)` windows cut from a stream.

    Args:
        stream: a `Stream`.
        window: frames per window (no reset inside).
        batch_size: windows per batch.
        shuffle: reshuffle the windows every epoch (seeded).
        seed: the shuffle's seed.
        stride: frames between window starts (default `window`).
    """

    def __init__(
        self, stream, window, batch_size=32, shuffle=True, seed=0, stride=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.x, self.y = stream.windows(window, stride)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.x))
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index):
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[batch], self.y[batch]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(len(self.x))
