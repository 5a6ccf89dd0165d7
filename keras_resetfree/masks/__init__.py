"""Per-frame masks m_t computed from the waveform itself (no boundary labels needed)."""

from keras_resetfree.masks.energy_mask import EnergyMask
from keras_resetfree.masks.temporal_intensity_mask import TemporalIntensityMask

__all__ = ["EnergyMask", "TemporalIntensityMask"]
