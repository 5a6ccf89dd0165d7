"""The reset-free loss and the baselines it is measured against."""

from keras_resetfree.losses.last_frame_cross_entropy import LastFrameCrossEntropy
from keras_resetfree.losses.reset_free_loss import FrameCrossEntropy, ResetFreeLoss

__all__ = ["FrameCrossEntropy", "LastFrameCrossEntropy", "ResetFreeLoss"]
