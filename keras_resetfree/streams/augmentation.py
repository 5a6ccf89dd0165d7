"""Seeded data augmentation for keyword streams: waveform draws and SpecAugment masks."""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """What `KeywordStream` varies in each utterance, and what training windows mask.

    Waveform draws (one per utterance, from the stream's seeded generator):
    a time shift of the clip (zero-padded at one end, cropped at the other,
    as kws_streaming does), a speed change by resampling (pitch and tempo
    together), and a gain of the whole block (gap and utterance, so the
    level the features see changes, not just the SNR). SpecAugment-style
    masks (Park et al. 2019) act on training feature windows: time masks
    blank runs of frames, frequency masks runs of coefficients, both set to
    the stream's mean (what the model's normalisation maps to zero).

    Args:
        time_shift: largest shift of a clip, seconds (0: none).
        speed: `(min, max)` speed factor (1: unchanged).
        gain_db: `(min, max)` gain of each block, dB.
        time_masks: time masks per training window.
        time_mask_frames: longest time mask, frames.
        frequency_masks: frequency masks per training window.
        frequency_mask_bins: widest frequency mask, coefficients.
    """

    time_shift: float = 0.1
    speed: tuple = (0.9, 1.1)
    gain_db: tuple = (-10.0, 10.0)
    time_masks: int = 2
    time_mask_frames: int = 10
    frequency_masks: int = 2
    frequency_mask_bins: int = 3

    def __post_init__(self):
        speed, gain = tuple(self.speed), tuple(self.gain_db)
        object.__setattr__(self, "speed", speed)
        object.__setattr__(self, "gain_db", gain)
        checks = [
            (
                math.isfinite(self.time_shift) and self.time_shift >= 0,
                f"time_shift must be >= 0 seconds, got {self.time_shift}",
            ),
            (
                len(speed) == 2
                and all(math.isfinite(s) for s in speed)
                and 0 < speed[0] <= speed[1],
                f"speed must be (min, max) with 0 < min <= max, got {speed}",
            ),
            (
                len(gain) == 2
                and all(math.isfinite(g) for g in gain)
                and gain[0] <= gain[1],
                f"gain_db must be finite (min, max), got {gain}",
            ),
        ]
        for name in (
            "time_masks",
            "time_mask_frames",
            "frequency_masks",
            "frequency_mask_bins",
        ):
            value = getattr(self, name)
            checks.append(
                (
                    isinstance(value, int | np.integer) and value >= 0,
                    f"{name} must be an integer >= 0, got {value!r}",
                )
            )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Augmentation: {message}.")

    @classmethod
    def none(cls):
        """No augmentation at all (the utterances as recorded, no masks)."""
        return cls(0.0, (1.0, 1.0), (0.0, 0.0), 0, 0, 0, 0)

    def replace(self, **changes):
        """A copy with some fields changed (for ablations)."""
        return dataclasses.replace(self, **changes)

    def utterance(self, waveform, sample_rate, rng):
        """The utterance shifted and resampled, as drawn from `rng`."""
        waveform = np.asarray(waveform, "float32")
        if self.speed != (1.0, 1.0):
            factor = rng.uniform(*self.speed)
            length = max(int(round(len(waveform) / factor)), 1)
            # Linear interpolation: cheap, and a +-10 % change keeps the
            # speech band far below the new Nyquist frequency.
            positions = np.arange(length) * (len(waveform) - 1) / max(length - 1, 1)
            waveform = np.interp(positions, np.arange(len(waveform)), waveform).astype(
                "float32"
            )
        largest = int(self.time_shift * sample_rate)
        if largest > 0:
            shift = int(rng.integers(-largest, largest + 1))
            shifted = np.zeros_like(waveform)
            if shift >= 0:
                shifted[shift:] = waveform[: len(waveform) - shift]
            else:
                shifted[:shift] = waveform[-shift:]
            waveform = shifted
        return waveform

    def block_gain(self, rng):
        """The linear gain of one block (gap and utterance)."""
        if self.gain_db == (0.0, 0.0):
            return 1.0
        return 10.0 ** (rng.uniform(*self.gain_db) / 20.0)

    def mask_features(self, x, fill, rng):
        """SpecAugment masks on training windows `(n, frames, features)`; returns a copy.

        `fill` is the value of a masked feature (e.g. the per-feature mean).
        """
        x = np.array(x, copy=True)
        n, frames, features = x.shape
        fill = np.broadcast_to(np.asarray(fill, x.dtype), (features,))
        for _ in range(self.time_masks):
            width = rng.integers(0, self.time_mask_frames + 1, size=n)
            start = rng.integers(0, np.maximum(frames - width, 0) + 1)
            index = np.arange(frames)
            hidden = (index >= start[:, None]) & (index < (start + width)[:, None])
            x[hidden] = fill
        for _ in range(self.frequency_masks):
            width = rng.integers(0, min(self.frequency_mask_bins, features) + 1, size=n)
            start = rng.integers(0, np.maximum(features - width, 0) + 1)
            index = np.arange(features)
            hidden = (index >= start[:, None]) & (index < (start + width)[:, None])
            x = np.where(hidden[:, None, :], fill, x)
        return x
