"""Turns frame labels into (one-hot targets, mask), shared by the losses and metrics."""

import numpy as np
from keras import ops


def check_labels(y_true, num_classes, noise_label):
    """Raises a ValueError for labels outside [noise_label, num_classes) when they are concrete.

    Inside a traced graph (jit, tf.function) labels cannot be read; there
    `frame_targets` makes the frames with invalid labels NaN instead, so the
    loss shows them rather than dropping them.
    """
    try:
        labels = ops.convert_to_numpy(y_true)
    except Exception:  # a symbolic tensor: checked in-graph instead
        return
    labels = np.asarray(labels)
    in_range = (labels >= 0) & (labels < num_classes)
    bad = ~(in_range | (labels == noise_label)) | (labels != np.round(labels))
    if bad.any():
        raise ValueError(
            f"Frame labels must be integers in [0, {num_classes}) or the noise label "
            f"{noise_label}; found [{', '.join(f'{v:g}' for v in np.unique(labels[bad])[:10])}]."
        )


def frame_targets(y_true, y_pred, noise_label):
    """Returns `(targets, mask, valid)` for `y_pred` of shape `(batch, frames, classes)`.

    `y_true` is integer frame labels `(batch, frames)` with `noise_label` on
    noise frames, or one-hot `(batch, frames, classes)` with all-zero rows on
    noise frames. `targets` is one-hot (zeros on noise frames), `mask` is
    m_t in {0, 1}, `valid` is False where a label is out of range.
    """
    num_classes = y_pred.shape[-1]
    pred_rank, true_rank = len(y_pred.shape), len(y_true.shape)
    if true_rank == pred_rank:
        if (
            y_true.shape[-1] is not None
            and num_classes is not None
            and y_true.shape[-1] != num_classes
        ):
            raise ValueError(
                f"One-hot y_true has {y_true.shape[-1]} classes, y_pred {num_classes}: "
                f"shapes {tuple(y_true.shape)} and {tuple(y_pred.shape)}."
            )
        targets = ops.cast(y_true, y_pred.dtype)
        mask = ops.cast(ops.sum(targets, axis=-1) > 0, y_pred.dtype)
        valid = ops.all(targets >= 0, axis=-1)
        return targets, mask, valid
    if true_rank != pred_rank - 1:
        raise ValueError(
            f"y_true must be frame labels (batch, frames) or one-hot (batch, frames, classes) "
            f"for y_pred of shape {tuple(y_pred.shape)}; received shape {tuple(y_true.shape)}."
        )
    for axis, (a, b) in enumerate(zip(y_true.shape, y_pred.shape[:-1])):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"y_true shape {tuple(y_true.shape)} does not match y_pred shape "
                f"{tuple(y_pred.shape)} (axis {axis})."
            )
    if num_classes is not None and 0 <= noise_label < num_classes:
        raise ValueError(
            f"noise_label {noise_label} is one of the {num_classes} classes: frames of that "
            "class would be noise. Use a label outside [0, classes), such as -1."
        )
    check_labels(y_true, num_classes, noise_label)
    labels = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(labels, noise_label), y_pred.dtype)
    in_range = ops.logical_and(labels >= 0, labels < num_classes)
    valid = ops.logical_or(in_range, ops.equal(labels, noise_label))
    # Noise (and invalid) frames index class 0 here; the mask zeroes their row.
    targets = ops.one_hot(
        ops.where(in_range, labels, 0), num_classes, dtype=y_pred.dtype
    )
    return targets * ops.expand_dims(mask, -1), mask, valid
