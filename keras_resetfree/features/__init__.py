"""Feature layers: waveform to per-frame features, aligned with the masks."""

from keras_resetfree.features.audio_layer import AudioLayer
from keras_resetfree.features.mfcc import MFCC

__all__ = ["MFCC", "AudioLayer"]
