import keras

from keras_resetfree.features.audio_layer import AudioLayer
from keras_resetfree.layers.base import PACKAGE
from keras_resetfree.masks.running_extremes import drifting_floor
from keras_resetfree.masks.temporal_intensity_mask import log_level


@keras.saving.register_keras_serializable(package=PACKAGE)
class EnergyMask(AudioLayer):
    """Per-frame mask from the frame energy in dB against a running noise floor.

    `e_t = 10 log10(mean(x^2))` over frame t; the floor follows drops at once
    and rises at most `floor_rise_db` per frame; `m_t = 1` when
    `e_t - floor_t > threshold_db`. Causal, like `TemporalIntensityMask`,
    and framed the same way; it is the simpler energy-based alternative (no
    smoothing, no peak normalisation, an absolute margin in dB).

    Args:
        frame_length, frame_step: framing in samples.
        threshold_db: margin above the noise floor, in dB.
        floor_rise_db: how fast the floor may rise, dB per frame.

    Call arguments:
        inputs: float waveform `(samples,)` or `(batch, samples)` in [-1, 1].

    Output: float32 mask `(frames,)` or `(batch, frames)`.

    Example:

    >>> mask = keras_resetfree.masks.EnergyMask(480, 320, threshold_db=6.0)(waveform)
    """

    def __init__(
        self,
        frame_length=480,
        frame_step=320,
        threshold_db=6.0,
        floor_rise_db=0.05,
        **kwargs,
    ):
        super().__init__(frame_length, frame_step, **kwargs)
        self.threshold_db = float(threshold_db)
        self.floor_rise_db = float(floor_rise_db)

    def call(self, inputs):
        inputs = self.check_audio(inputs)
        b = self.backend
        energy = log_level(b, self.frames(inputs), centred=False)
        floor = drifting_floor(b, energy, self.floor_rise_db)
        return b.cast(energy - floor > self.threshold_db, "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "threshold_db": self.threshold_db,
            "floor_rise_db": self.floor_rise_db,
        }
