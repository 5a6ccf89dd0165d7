"""The base of the audio layers: framing and input checks, shared by features and masks."""

import keras
import numpy as np

# Keras's base for layers that also run inside tf.data whatever the backend:
# `self.backend` switches to TensorFlow in a tf.data graph. Not exported in
# keras.layers (3.15), but it is what Keras's own preprocessing layers use.
from keras_resetfree._compat import DataLayer

_PEAK_LIMIT = 1.0 + 1e-3


class _NumpyMath:
    @staticmethod
    def rfft(x, fft_length=None):
        spectrum = np.fft.rfft(x, n=fft_length, axis=-1)
        return spectrum.real.astype("float32"), spectrum.imag.astype("float32")


class _NumpyBackend:
    """The few ops the audio layers use, in NumPy, under the names of Keras's
    backends. (Keras's own numpy backend cannot be imported beside another
    backend: it replaces `keras.src.backend.numpy`.)"""

    name = "numpy"
    numpy = np
    math = _NumpyMath

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x).astype(dtype)

    shape = staticmethod(np.shape)
    convert_to_tensor = staticmethod(np.asarray)


def _is_eager(tensor):
    try:
        tensor.numpy()
        return True
    except Exception:
        return False


class AudioLayer(DataLayer):
    """Frames a waveform `(samples,)` or `(batch, samples)` into `(…, frames, frame_length)`.

    Frame t covers samples `[t * frame_step, t * frame_step + frame_length)`;
    there is no padding, so frame t depends only on samples up to its end
    (causal) and every audio layer of the library frames the same way: frame
    t of the MFCC and frame t of a mask are the same samples. A waveform of
    N >= frame_length samples gives `1 + (N - frame_length) // frame_step`
    frames.

    Checks, with errors that name the problem: integer dtype, stereo or
    multichannel shapes, audio shorter than one frame, and, when the values
    can be read (eager calls) or asserted (TensorFlow graphs, tf.data
    included), NaN/Inf samples and integer PCM passed as float without scaling
    (|x| > 1). Inside `jax.jit` the values cannot be checked.
    """

    def __init__(self, frame_length=480, frame_step=320, **kwargs):
        super().__init__(**kwargs)
        if int(frame_length) <= 0 or int(frame_step) <= 0:
            raise ValueError(
                f"{type(self).__name__}: frame_length and frame_step must be positive, "
                f"got {frame_length}, {frame_step}."
            )
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)

    def compute_numpy(self, waveform, method="call"):
        """Runs the layer on a numpy waveform with numpy ops, returns numpy.

        The same code as `call`, on NumPy: what the stream
        builders use to make features for millions of frames without
        compiling a graph for every new audio length.
        """
        keras_backend = self.backend
        self.backend = _NumpyBackend
        try:
            return np.asarray(
                getattr(self, method)(np.asarray(waveform, dtype="float32"))
            )
        finally:
            self.backend = keras_backend

    def compute_output_shape(self, input_shape):
        """One value per frame: `(…, frames)` (MFCC overrides it)."""
        n = input_shape[-1]
        return (*input_shape[:-1], None if n is None else self.num_frames(n))

    def num_frames(self, num_samples):
        return 1 + (num_samples - self.frame_length) // self.frame_step

    def check_audio(self, inputs):
        """Raises a ValueError for bad audio; returns the inputs (with asserts in TF graphs)."""
        shape = tuple(inputs.shape)
        name = f"{type(self).__name__} '{self.name}'"
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "float" not in dtype:
            raise ValueError(
                f"{name} expects float audio in [-1, 1]; received dtype {dtype}. "
                "Convert integer PCM first (int16: divide by 32768)."
            )
        if len(shape) == 3 or (
            len(shape) == 2
            and shape[-1] is not None
            and 1 < shape[-1] <= 8
            and (shape[0] or 0) > shape[-1]
        ):
            raise ValueError(
                f"{name} expects mono audio (samples,) or (batch, samples); received shape "
                f"{shape}, which looks like multichannel (…, samples, channels) audio. "
                "Mix down to mono or pick a channel."
            )
        if len(shape) not in (1, 2):
            raise ValueError(
                f"{name} expects (samples,) or (batch, samples); received shape {shape}."
            )
        if shape[-1] is not None and shape[-1] < self.frame_length:
            raise ValueError(
                f"{name}: audio of {shape[-1]} samples is shorter than one frame "
                f"({self.frame_length} samples)."
            )
        if self.backend.name == "tensorflow" and not _is_eager(inputs):
            return self._graph_checks(inputs, name)
        try:
            values = np.asarray(inputs)
        except Exception:  # a traced tensor (jax.jit): its values cannot be read
            return inputs
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name}: the audio holds NaN or Inf samples.")
        peak = float(np.abs(values).max()) if values.size else 0.0
        if peak > _PEAK_LIMIT:
            raise ValueError(
                f"{name}: samples reach {peak:g}, outside [-1, 1]: integer PCM passed as "
                "float without scaling? Divide int16 audio by 32768."
            )
        return inputs

    def _graph_checks(self, inputs, name):
        """In a TensorFlow graph (tf.data, tf.function): the same checks as run-time asserts."""
        import tensorflow as tf

        finite = tf.debugging.assert_all_finite(
            inputs, f"{name}: the audio holds NaN or Inf samples."
        )
        in_range = tf.debugging.assert_less_equal(
            tf.reduce_max(tf.abs(finite)),
            tf.constant(_PEAK_LIMIT, finite.dtype),
            message=f"{name}: samples outside [-1, 1]: integer PCM passed as float "
            "without scaling? Divide int16 audio by 32768.",
        )
        with tf.control_dependencies([in_range]):
            return tf.identity(finite)

    def frames(self, inputs):
        """`(…, samples)` -> `(…, frames, frame_length)`."""
        b = self.backend
        num_samples = b.shape(inputs)[-1]
        count = self.num_frames(num_samples)
        starts = b.numpy.arange(count) * self.frame_step
        index = b.numpy.expand_dims(starts, -1) + b.numpy.arange(self.frame_length)
        return b.numpy.take(inputs, index, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
        }
