import math

import keras
from keras import ops

from keras_resetfree.layers.base import PACKAGE
from keras_resetfree.losses.frame_targets import frame_targets


def log_probabilities(y_pred, from_logits):
    """Stable log-probabilities: log-softmax of logits, or clipped log of probabilities."""
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    return ops.log(ops.clip(probs, keras.backend.epsilon(), 1.0))


def peak_cross_entropy(targets, mask, log_p):
    """The max-pooling term of `ResetFreeLoss` per sequence, `(batch,)`.

    Each informative frame counts for its most likely target class (its
    label); soft targets count for their largest entry.
    """
    num_classes = log_p.shape[-1]
    labelled = ops.one_hot(ops.argmax(targets, axis=-1), num_classes, dtype=log_p.dtype)
    labelled = labelled * ops.expand_dims(mask, -1)
    best = ops.max(ops.where(labelled > 0, log_p, -1e9), axis=1)
    present = ops.max(labelled, axis=1)
    total = ops.sum(ops.where(present > 0, best, 0.0), axis=-1)
    return -total / ops.maximum(ops.sum(present, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResetFreeLoss(keras.losses.Loss):
    """Cross-entropy on informative frames, KL to the uniform distribution on noise frames.

    Per frame t, with m_t = 1 on informative frames and 0 on noise frames,
    C classes and U the uniform distribution:

        L_t = m_t * CE(y_t, p_t) + (1 - m_t) * kl_weight * KL(U || p_t)
        CE(y_t, p_t) = -log p_t[y_t]
        KL(U || p_t) = -log C - (1 / C) * sum_c log p_t[c]

    Both terms are in nats per frame and neither is rescaled by the number of
    informative or noise frames: a noise frame weighs as much as an
    informative one (times `kl_weight`). The per-frame losses `(batch,
    frames)` are then reduced by Keras's `reduction` (default
    `"sum_over_batch_size"`: the mean over all frames of all sequences, after
    `sample_weight`, which may be `(batch,)` or `(batch, frames)`). With
    `kl_weight=1` the gradient w.r.t. the logits is
    `p_t - [m_t y_t + (1 - m_t) U]` per frame.

    With `peak_weight` > 0 a max-pooling term (Sun et al. 2016, "Max-pooling
    loss training of LSTM networks for small-footprint keyword spotting") is
    added: for each sequence and each class labelled on some of its
    informative frames, the cross-entropy at the one frame where that class
    is most probable, averaged over the sequence's labelled classes:

        P = -(1 / |K|) * sum_{c in K} max_{t: y_t = c} log p_t[c]

    where K holds the classes labelled in the sequence (P = 0 when none is).
    A detector fires on a word's peak posterior, and the per-frame
    cross-entropy alone can leave a small model unsure even where it is
    right; this term trains each word's best frame to be confident (on the
    keyword recipe it did not pay: `docs/keyword_spotting.md`). `peak_weight * P` is
    added to every frame of the sequence, so after the mean over frames it
    weighs as a per-frame term would (and `sample_weight` weighs it with its
    frames). Two utterances of one class in the same sequence share a peak.

    Args:
        kl_weight: weight of the KL term on noise frames (the CE/KL balance).
        peak_weight: weight of the max-pooling term (0: none, the paper's
            loss).
        from_logits: whether `y_pred` are logits (else probabilities).
        noise_label: the integer label of noise frames (m_t = 0).
        reduction, name, dtype: as for `keras.losses.Loss`.

    `y_true`: integer labels `(batch, frames)` (`noise_label` on noise frames)
    or one-hot `(batch, frames, classes)` with all-zero rows on noise frames.
    `y_pred`: `(batch, frames, classes)`. Labels outside `[0, classes)` other
    than `noise_label` raise a ValueError (eagerly) or make the loss NaN
    (inside a compiled graph, where labels cannot be read).

    Example:

    >>> model.compile(optimizer="adam",
    ...               loss=keras_resetfree.ResetFreeLoss(kl_weight=1.0, from_logits=True))
    """

    def __init__(
        self,
        kl_weight=1.0,
        from_logits=False,
        noise_label=-1,
        reduction="sum_over_batch_size",
        name="reset_free_loss",
        dtype=None,
        peak_weight=0.0,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        for label, value in (("kl_weight", kl_weight), ("peak_weight", peak_weight)):
            if not math.isfinite(float(value)) or value < 0:
                raise ValueError(f"{label} must be a finite number >= 0, got {value}.")
        self.kl_weight = float(kl_weight)
        self.peak_weight = float(peak_weight)
        self.from_logits = from_logits
        self.noise_label = int(noise_label)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None and len(getattr(sample_weight, "shape", ())) == 1:
            # One weight per sequence: applies to each of its frames.
            sample_weight = ops.expand_dims(ops.convert_to_tensor(sample_weight), -1)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        targets, mask, valid = frame_targets(y_true, y_pred, self.noise_label)
        log_p = log_probabilities(y_pred, self.from_logits)
        cross_entropy = -ops.sum(targets * log_p, axis=-1)
        losses = mask * cross_entropy
        if self.kl_weight:
            num_classes = y_pred.shape[-1]
            kl = -math.log(num_classes) - ops.mean(log_p, axis=-1)
            losses = losses + (1.0 - mask) * self.kl_weight * kl
        if self.peak_weight:
            peak = peak_cross_entropy(targets, mask, log_p)
            losses = losses + self.peak_weight * ops.expand_dims(peak, -1)
        return ops.where(valid, losses, float("nan"))

    def get_config(self):
        return {
            **super().get_config(),
            "kl_weight": self.kl_weight,
            "peak_weight": self.peak_weight,
            "from_logits": self.from_logits,
            "noise_label": self.noise_label,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameCrossEntropy(ResetFreeLoss):
    """Baseline: cross-entropy on informative frames only, noise frames ignored (no KL term).

    The same mask and reduction as `ResetFreeLoss` with `kl_weight=0`: noise
    frames contribute zero (and still count in the mean over frames).

    Args:
        from_logits, noise_label, reduction, name, dtype: see `ResetFreeLoss`.
    """

    def __init__(
        self, from_logits=False, noise_label=-1, name="frame_cross_entropy", **kwargs
    ):
        kwargs.pop("kl_weight", None)
        super().__init__(
            kl_weight=0.0,
            from_logits=from_logits,
            noise_label=noise_label,
            name=name,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["kl_weight"]
        return config
