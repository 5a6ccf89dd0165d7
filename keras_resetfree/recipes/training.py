"""Training to convergence on a never-reset validation stream."""

import time

import keras
import numpy as np

from keras_resetfree.losses import ResetFreeLoss
from keras_resetfree.recipes import scoring
from keras_resetfree.streaming import Streamer
from keras_resetfree.streams.delivery import StreamWindows


class StreamValidation(keras.callbacks.Callback):
    """Scores a never-reset validation stream after each epoch; keeps the best weights.

    The stream runs through a `Streamer` (no reset, as deployed); the
    scores of `keras_resetfree.recipes.scoring.score` (`acc_p`,
    `segment_accuracy`, `hit_rate`, `false_alarms_per_hour`, ...) are added
    to the epoch's logs with a `val_` prefix, so the progress bar and the
    `History` show them and later callbacks (`ReduceLROnPlateau`) can
    monitor them. Training stops when `monitor` has not improved for
    `patience` epochs, and the best epoch's weights are restored.

    Args:
        stream: the validation `Stream` (other speakers than training).
        monitor: the log to maximise (default `val_segment_accuracy`).
        patience: epochs without improvement before stopping (None: never).
        min_delta: the smallest change that counts as an improvement.
        restore_best_weights: put the best epoch's weights back at the end.
        score_start: also score the weights training starts from, and keep
            them unless an epoch beats them (fine-tuning that must not make
            a trained model worse).
        detector: the `Detector` of the detection scores.
        chunk: frames per Streamer call.
        pieces: the stream runs as this many consecutive pieces side by side,
            each never reset (`recipes.stream_logits`): much faster, and each
            piece is still minutes long.
    """

    def __init__(
        self,
        stream,
        monitor="val_segment_accuracy",
        patience=10,
        min_delta=0.005,
        restore_best_weights=True,
        detector=None,
        chunk=250,
        pieces=8,
        score_start=False,
    ):
        super().__init__()
        self.score_start = bool(score_start)
        self.stream = stream
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.detector = detector
        self.chunk = int(chunk)
        self.pieces = int(pieces)
        self.streamer = None
        self.best = -np.inf
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.best_weights, self.wait = (
            -np.inf,
            None,
            None,
            0,
        )
        self.streamer = None
        if self.score_start:
            value = self._scores().get(self.monitor.removeprefix("val_"), np.nan)
            if np.isfinite(value):
                self.best, self.best_weights = value, self.model.get_weights()

    def _scores(self):
        if self.streamer is None:
            self.streamer = Streamer(self.model, batch_size=self.pieces)
        logits = scoring.stream_logits(
            self.model,
            self.stream.features,
            chunk=self.chunk,
            pieces=self.pieces,
            streamer=self.streamer,
        )
        return scoring.score(
            scoring.probabilities(logits), self.stream, self.detector, curve=False
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        for name, value in self._scores().items():
            if name != "hours":
                logs[f"val_{name}"] = float(value)
        if self.monitor not in logs:
            raise ValueError(
                f"StreamValidation: monitor {self.monitor!r} is not a score; have {sorted(logs)}."
            )
        value = logs[self.monitor]
        if not np.isfinite(value):
            # A diverged model: stop, and fall back on the best weights.
            self.model.stop_training = True
            return
        if value > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def fit(
    model,
    task,
    max_epochs=100,
    patience=12,
    learning_rate=3e-3,
    kl_weight=1.0,
    peak_weight=0.0,
    window=200,
    batch_size=32,
    validation_segments=None,
    monitor="val_segment_accuracy",
    verbose=1,
    callbacks=(),
    first_stream=None,
    keep_start=False,
    weight_average=0.0,
):
    """Trains `model` on `task` (a `KeywordTask`) with `ResetFreeLoss` until it converges.

    `kl_weight`, `peak_weight`: the loss's (`keras_resetfree.ResetFreeLoss`).

    Every epoch is a fresh training stream (new utterance order, gaps, SNRs
    and augmentation; `task.train_stream(epoch)`), cut into never-reset
    windows of `window` frames with SpecAugment masks. After each epoch the
    validation stream is scored with `StreamValidation`; the learning rate
    halves after `patience // 3` epochs without improvement, training stops
    after `patience`, and the best epoch's weights are kept. Gradients are
    clipped (norm 1), which every family needs on long windows.

    `first_stream`: `task.train_stream(0)` if already built. `keep_start`:
    score the starting weights on the validation stream too, and keep them
    unless an epoch beats them (for fine-tuning a trained model).
    `weight_average`: if > 0, the momentum of an exponential moving average
    of the weights, updated after every step (Keras's `use_ema`); each
    epoch's validation scores, the weights kept and the weights returned
    are the averaged ones (`keras.callbacks.SwapEMAWeights`).

    Returns:
        `(history, seconds)`: the `keras.callbacks.History` (with the `val_`
        stream scores of every epoch) and the wall time.
    """
    if not 0.0 <= weight_average < 1.0:
        raise ValueError(f"weight_average must be in [0, 1), got {weight_average!r}.")
    start = time.perf_counter()

    def training_stream(epoch):
        # Epoch 0's stream, when the caller already built it (to adapt the
        # model's Normalization), is not built a second time.
        if epoch == 0 and first_stream is not None:
            return first_stream
        return task.train_stream(epoch)

    data = StreamWindows(
        training_stream,
        window,
        batch_size=batch_size,
        seed=task.seed,
        augmentation=task.augmentation,
    )
    validation = task.evaluation_stream("validation", validation_segments)
    averaged = weight_average > 0
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate,
            clipnorm=1.0,
            use_ema=averaged,
            ema_momentum=weight_average if averaged else 0.99,
        ),
        loss=ResetFreeLoss(
            kl_weight=kl_weight, peak_weight=peak_weight, from_logits=True
        ),
    )
    # The averaged weights are swapped in at each epoch's end, before the
    # validation stream scores them, and out again as the next epoch begins.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if averaged else []
    callbacks = [
        *swap,
        StreamValidation(validation, monitor, patience, score_start=keep_start),
        keras.callbacks.ReduceLROnPlateau(
            monitor,
            factor=0.5,
            patience=max(patience // 3, 1),
            mode="max",
            min_lr=1e-5,
            verbose=0,
        ),
        *callbacks,
    ]
    history = model.fit(data, epochs=max_epochs, callbacks=callbacks, verbose=verbose)
    return history, time.perf_counter() - start
