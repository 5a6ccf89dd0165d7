import keras
from keras import ops

from keras_resetfree.layers.base import PACKAGE
from keras_resetfree.losses.frame_targets import check_labels
from keras_resetfree.losses.reset_free_loss import log_probabilities


@keras.saving.register_keras_serializable(package=PACKAGE)
class LastFrameCrossEntropy(keras.losses.Loss):
    """Baseline: classic per-utterance training, cross-entropy at the last frame only.

    The model sees one utterance per sequence, from a reset state, and is
    scored on its output at the last frame: the training that needs a reset
    at every utterance boundary at inference.

    Args:
        from_logits: whether `y_pred` are logits.
        reduction, name, dtype: as for `keras.losses.Loss`.

    `y_true`: the utterance label `(batch,)` (or one-hot `(batch, classes)`);
    `y_pred`: per-frame outputs `(batch, frames, classes)` or the last frame
    `(batch, classes)`.
    """

    def __init__(
        self,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="last_frame_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        if len(y_pred.shape) == 3:
            y_pred = y_pred[:, -1]
        num_classes = y_pred.shape[-1]
        log_p = log_probabilities(y_pred, self.from_logits)
        if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes:
            targets = ops.cast(y_true, log_p.dtype)
        else:
            y_true = ops.reshape(y_true, (-1,))
            check_labels(y_true, num_classes, noise_label=0)
            targets = ops.one_hot(
                ops.cast(y_true, "int32"), num_classes, dtype=log_p.dtype
            )
        return -ops.sum(targets * log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
