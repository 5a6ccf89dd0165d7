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
        stream: a `Stream`, or a function `epoch -> Stream` that draws a fresh
            stream for every epoch (new order, gaps, noise and augmentation).
            The number of windows is fixed by the first one: later streams
            are cut to it (or repeated when shorter).
        window: frames per window (no reset inside).
        batch_size: windows per batch.
        shuffle: reshuffle the windows every epoch (seeded).
        seed: the seed of the shuffle and of the masks.
        stride: frames between window starts (default `window`).
        augmentation: a `keras_resetfree.streams.Augmentation` whose
            SpecAugment masks are drawn on every epoch's windows (masked
            features are set to the first stream's per-feature mean).
    """

    def __init__(
        self,
        stream,
        window,
        batch_size=32,
        shuffle=True,
        seed=0,
        stride=None,
        augmentation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source = stream if callable(stream) else None
        self.window, self.stride = int(window), stride
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        first = stream(0) if self.source else stream
        self.fill = first.features.mean(0)
        self.count = None
        self._load(first)

    def _load(self, stream):
        x, y = stream.windows(self.window, self.stride)
        if self.count is None:
            self.count = len(x)
        elif len(x) != self.count:
            index = np.arange(self.count) % len(x)
            x, y = x[index], y[index]
        self.clean, self.y = x, y
        self._draw()

    def _draw(self):
        self.x = self.clean
        if self.augmentation is not None:
            self.x = self.augmentation.mask_features(self.clean, self.fill, self.rng)
        self.order = (
            self.rng.permutation(len(self.x))
            if self.shuffle
            else np.arange(len(self.x))
        )

    def __len__(self):
        return int(np.ceil(self.count / self.batch_size))

    def __getitem__(self, index):
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[batch], self.y[batch]

    def on_epoch_end(self):
        self.epoch += 1
        if self.source is not None:
            self._load(self.source(self.epoch))
        else:
            self._draw()
