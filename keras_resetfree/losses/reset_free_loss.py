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

    Args:
        kl_weight: weight of the KL term on noise frames (the CE/KL balance).
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
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not math.isfinite(float(kl_weight)) or kl_weight < 0:
            raise ValueError(
                f"kl_weight must be a finite number >= 0, got {kl_weight}."
            )
        self.kl_weight = float(kl_weight)
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
        return ops.where(valid, losses, float("nan"))

    def get_config(self):
        return {
            **super().get_config(),
            "kl_weight": self.kl_weight,
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
