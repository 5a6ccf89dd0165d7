import math

import keras
import numpy as np

from keras_resetfree.features.audio_layer import AudioLayer
from keras_resetfree.layers.base import PACKAGE


def _hertz_to_mel(hertz):
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_weight_matrix(
    num_mel_bins, num_spectrogram_bins, sample_rate, lower_hertz, upper_hertz
):
    """`(num_spectrogram_bins, num_mel_bins)` triangular filters on the HTK mel scale.

    Triangles are equally spaced in mel between `lower_hertz` and
    `upper_hertz`, peak 1, evaluated on the linear-frequency bins of an FFT;
    the DC bin gets no weight.
    """
    if not 0.0 <= lower_hertz < upper_hertz <= sample_rate / 2:
        raise ValueError(
            f"Need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2, got "
            f"{lower_hertz}, {upper_hertz} at {sample_rate} Hz."
        )
    bin_mel = _hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_spectrogram_bins))[1:]
    edges = np.linspace(
        _hertz_to_mel(lower_hertz), _hertz_to_mel(upper_hertz), num_mel_bins + 2
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower) / (center - lower)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(weights, [[1, 0], [0, 0]]).astype("float32")


def dct_matrix(num_mel_bins, num_coefficients):
    """`(num_mel_bins, num_coefficients)` DCT-II scaled by `sqrt(2 / N)` (as tf.signal's MFCCs)."""
    n = np.arange(num_mel_bins)[:, None]
    k = np.arange(num_coefficients)[None, :]
    return (
        np.sqrt(2.0 / num_mel_bins) * np.cos(math.pi * (n + 0.5) * k / num_mel_bins)
    ).astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class MFCC(AudioLayer):
    """Waveform to mel-frequency cepstral coefficients, frame-aligned with the masks.

    Per frame (framing of `AudioLayer`: frame t is samples
    `[t * frame_step, t * frame_step + frame_length)`): a periodic Hann
    window, an FFT of `fft_length` points, the power spectrum, `num_mel_bins`
    triangular HTK-mel filters, `log(mel + log_offset)` and a DCT-II, keeping
    `num_coefficients` coefficients.

    Normalisation is per frame and fixed: the log uses an absolute floor
    (`log_offset`), not the maximum of the batch, so frame t's features
    depend on frame t's samples alone (streaming-safe, unlike
    `keras.layers.MelSpectrogram`, whose dB floor follows the batch maximum).
    For per-coefficient standardisation, follow it with a
    `keras.layers.Normalization` adapted on training features: fixed after
    `adapt`, so still streaming-safe.

    Args:
        sample_rate: sampling rate of the input, Hz.
        frame_length, frame_step: framing in samples (default 30 ms / 20 ms at
            16 kHz, as TFLite Micro's micro_speech).
        num_mel_bins: number of mel filters.
        num_coefficients: number of cepstral coefficients kept.
        fft_length: FFT size, default the next power of two >= frame_length.
        lower_edge_hertz, upper_edge_hertz: band of the mel filters
            (default 20 Hz to 7600 Hz, capped at the Nyquist frequency).
        log_offset: floor added before the log.

    Call arguments:
        inputs: float waveform `(samples,)` or `(batch, samples)` in [-1, 1].

    Output: `(frames, num_coefficients)` or `(batch, frames, num_coefficients)`.

    Example:

    >>> mfcc = keras_resetfree.features.MFCC(16000, 480, 320, 40, 13)(waveform)
    """

    def __init__(
        self,
        sample_rate=16000,
        frame_length=480,
        frame_step=320,
        num_mel_bins=40,
        num_coefficients=13,
        fft_length=None,
        lower_edge_hertz=20.0,
        upper_edge_hertz=7600.0,
        log_offset=1e-6,
        **kwargs,
    ):
        super().__init__(frame_length, frame_step, **kwargs)
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.num_coefficients = int(num_coefficients)
        if not 0 < self.num_coefficients <= self.num_mel_bins:
            raise ValueError(
                f"MFCC: need 0 < num_coefficients <= num_mel_bins, got "
                f"{num_coefficients}, {num_mel_bins}."
            )
        self.fft_length = int(
            fft_length or 2 ** math.ceil(math.log2(self.frame_length))
        )
        if self.fft_length < self.frame_length:
            raise ValueError(
                f"MFCC: fft_length {self.fft_length} is shorter than frame_length {self.frame_length}."
            )
        self.lower_edge_hertz = float(lower_edge_hertz)
        self.upper_edge_hertz = float(min(upper_edge_hertz, self.sample_rate / 2))
        self.log_offset = float(log_offset)
        self._mel = mel_weight_matrix(
            self.num_mel_bins,
            self.fft_length // 2 + 1,
            self.sample_rate,
            self.lower_edge_hertz,
            self.upper_edge_hertz,
        )
        self._dct = dct_matrix(self.num_mel_bins, self.num_coefficients)
        n = np.arange(self.frame_length)
        self._window = (
            0.5 - 0.5 * np.cos(2.0 * math.pi * n / self.frame_length)
        ).astype("float32")

    def log_mel(self, inputs):
        """`(…, frames, num_mel_bins)` log-mel energies."""
        b = self.backend
        # Framed here rather than with keras.ops.stft, which frames
        # fft_length samples and centres the window in them: that would
        # shift frame t by (fft_length - frame_length) / 2 samples from the
        # masks' frame t and read past its end.
        windowed = self.frames(inputs) * b.convert_to_tensor(self._window)
        real, imag = b.math.rfft(windowed, fft_length=self.fft_length)
        power = b.numpy.square(real) + b.numpy.square(imag)
        mel = b.numpy.matmul(power, b.convert_to_tensor(self._mel))
        return b.numpy.log(mel + self.log_offset)

    def call(self, inputs):
        inputs = self.check_audio(inputs)
        b = self.backend
        return b.numpy.matmul(self.log_mel(inputs), b.convert_to_tensor(self._dct))

    def compute_output_shape(self, input_shape):
        n = input_shape[-1]
        frames = None if n is None else self.num_frames(n)
        return (*input_shape[:-1], frames, self.num_coefficients)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "num_mel_bins": self.num_mel_bins,
            "num_coefficients": self.num_coefficients,
            "fft_length": self.fft_length,
            "lower_edge_hertz": self.lower_edge_hertz,
            "upper_edge_hertz": self.upper_edge_hertz,
            "log_offset": self.log_offset,
        }
