"""Continual streams: segments with noise between them, every frame labelled."""

from keras_resetfree.streams.augmentation import Augmentation
from keras_resetfree.streams.delivery import StreamWindows, to_tf_dataset
from keras_resetfree.streams.image_stream import FASHION_CLASSES, image_stream
from keras_resetfree.streams.keyword_stream import KeywordStream
from keras_resetfree.streams.plot import plot_stream
from keras_resetfree.streams.stream import Stream, frame_span
from keras_resetfree.streams.template_stream import template_stream

__all__ = [
    "Augmentation",
    "FASHION_CLASSES",
    "KeywordStream",
    "Stream",
    "StreamWindows",
    "frame_span",
    "image_stream",
    "plot_stream",
    "template_stream",
    "to_tf_dataset",
]
