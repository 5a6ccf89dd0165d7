"""Accuracy over informative frames (acc_f), at segment ends (acc_p), noise confidence."""

import keras
import numpy as np
from keras import ops

from keras_resetfree.layers.base import PACKAGE


def _labels(y_true, y_pred, noise_label):
    """Integer frame labels `(batch, frames)` from integer or one-hot `y_true`."""
    if len(y_true.shape) == len(y_pred.shape):
        hot = ops.sum(y_true, axis=-1) > 0
        return ops.where(
            hot, ops.cast(ops.argmax(y_true, axis=-1), "int32"), noise_label
        )
    return ops.cast(y_true, "int32")


def decision_frames(labels, noise_label=-1):
    """Boolean `(batch, frames)`: the last frame of each segment (a run of one label).

    A segment that reaches the last frame of the sequence is cut by the
    sequence's end, so it has no decision frame there.
    """
    informative = ops.not_equal(labels, noise_label)
    changes = ops.not_equal(labels[:, :-1], labels[:, 1:])
    ends = ops.logical_and(informative[:, :-1], changes)
    return ops.concatenate([ends, ops.zeros_like(informative[:, -1:])], axis=1)


class _FrameMeanMetric(keras.metrics.Metric):
    """A weighted mean over frames, accumulated over batches.

    Subclasses say, per frame, the value and its weight (`frame_values`);
    `sample_weight` (per sequence or per frame) multiplies the weight.
    """

    def __init__(self, noise_label=-1, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.noise_label = int(noise_label)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def frame_values(self, labels, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        labels = _labels(y_true, y_pred, self.noise_label)
        values, weights = self.frame_values(labels, y_pred)
        weights = ops.cast(weights, self.dtype)
        if sample_weight is not None:
            weight = ops.convert_to_tensor(sample_weight, self.dtype)
            weights = weights * (weight[:, None] if len(weight.shape) == 1 else weight)
        self.total.assign_add(ops.sum(ops.cast(values, self.dtype) * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "noise_label": self.noise_label}


class _CountingMetric(_FrameMeanMetric):
    """Accuracy of the argmax over the frames that `select` picks."""

    def select(self, labels):
        raise NotImplementedError

    def frame_values(self, labels, y_pred):
        correct = ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels)
        return correct, self.select(labels)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameAccuracy(_CountingMetric):
    """acc_f: accuracy of the argmax over informative frames (label != `noise_label`).

    `y_true`: frame labels `(batch, frames)` or one-hot `(batch, frames,
    classes)` (all-zero rows on noise frames); `y_pred`: `(batch, frames,
    classes)` logits or probabilities.

    Example:

    >>> model.compile(..., metrics=[keras_resetfree.metrics.FrameAccuracy()])
    """

    def __init__(self, noise_label=-1, name="acc_f", dtype=None):
        super().__init__(noise_label=noise_label, name=name, dtype=dtype)

    def select(self, labels):
        return ops.not_equal(labels, self.noise_label)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DecisionAccuracy(_CountingMetric):
    """acc_p: accuracy of the prediction at the last informative frame of each segment.

    A segment is a run of one label between noise frames (or label changes).
    Segments cut by the end of a training window are not counted (see
    `decision_frames`).

    Example:

    >>> model.compile(..., metrics=[keras_resetfree.metrics.DecisionAccuracy()])
    """

    def __init__(self, noise_label=-1, name="acc_p", dtype=None):
        super().__init__(noise_label=noise_label, name=name, dtype=dtype)

    def select(self, labels):
        return decision_frames(labels, self.noise_label)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NoiseConfidence(_FrameMeanMetric):
    """Mean max-probability on noise frames: 1 / classes for a perfectly calm model.

    `y_pred` are logits (`from_logits=True`, default) or probabilities.
    """

    def __init__(
        self, noise_label=-1, from_logits=True, name="noise_confidence", dtype=None
    ):
        super().__init__(noise_label=noise_label, name=name, dtype=dtype)
        self.from_logits = from_logits

    def frame_values(self, labels, y_pred):
        probs = ops.softmax(y_pred, axis=-1) if self.from_logits else y_pred
        return ops.max(probs, axis=-1), ops.equal(labels, self.noise_label)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


def _as_batch(labels, probs):
    labels, probs = np.asarray(labels), np.asarray(probs)
    if labels.ndim == 1:
        labels, probs = labels[None], probs[None]
    if labels.shape != probs.shape[:-1]:
        raise ValueError(
            f"labels {labels.shape} must be the frames of outputs {probs.shape} (without classes)."
        )
    return labels, probs


def frame_accuracy(labels, outputs, noise_label=-1):
    """acc_f on numpy arrays: labels `(frames,)` or `(batch, frames)`, outputs with classes last."""
    labels, outputs = _as_batch(labels, outputs)
    informative = labels != noise_label
    return float((outputs.argmax(-1)[informative] == labels[informative]).mean())


def decision_accuracy(labels, outputs, noise_label=-1):
    """acc_p on numpy arrays: the argmax at the last frame of each segment."""
    labels, outputs = _as_batch(labels, outputs)
    ends = np.asarray(
        ops.convert_to_numpy(
            decision_frames(ops.convert_to_tensor(labels), noise_label)
        )
    )
    return float((outputs.argmax(-1)[ends] == labels[ends]).mean())


def noise_confidence(labels, probs, noise_label=-1):
    """Mean max-probability on noise frames, on numpy arrays of probabilities."""
    labels, probs = _as_batch(labels, probs)
    return float(probs.max(-1)[labels == noise_label].mean())


def segment_decision_frames(segments, mask=None):
    """The decision frame of each segment `(start, end, class)`: its last informative frame
    (mask = 1), or its last frame when the mask marks none of it."""
    frames = []
    for start, end, _ in np.asarray(segments).reshape(-1, 3):
        informative = np.flatnonzero(mask[start:end] > 0) if mask is not None else []
        frames.append(start + informative[-1] if len(informative) else end - 1)
    return np.asarray(frames, dtype="int64")


def stream_decision_accuracy(outputs, segments, mask=None):
    """acc_p on a stream: the argmax of `outputs` `(frames, classes)` at each segment's decision
    frame (`segment_decision_frames`) against the segment's class."""
    segments = np.asarray(segments).reshape(-1, 3)
    if len(segments) == 0:
        return float("nan")
    frames = segment_decision_frames(segments, mask)
    return float((np.asarray(outputs)[frames].argmax(-1) == segments[:, 2]).mean())
