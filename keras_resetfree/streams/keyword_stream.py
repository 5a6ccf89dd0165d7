"""Keyword streams: utterances with noise gaps between them, built lazily, every frame labelled."""

import math

import keras
import numpy as np

from keras_resetfree.masks import TemporalIntensityMask
from keras_resetfree.streams.stream import Stream, frame_span

_DITHER_RMS = (
    1e-4  # "silence" gaps: -80 dBFS of white noise, so log-energies stay finite
)

#: Speech is never mixed louder than this far above `noise_rms` (with the default
#: 0.01: an active-part RMS of 0.1, -20 dBFS); a higher SNR lowers the noise of the
#: block (gap and utterance) instead, so clean streams do not clip.
SPEECH_CEILING_DB = 20.0

#: The `"speech"` mask marks an utterance's frames whose energy, in the clean
#: recording before any noise is added, lies within this many dB of its
#: loudest frame ...
SPEECH_RANGE_DB = 30.0
#: ... and the frames up to this long after each of them (within the clip):
#: a causal model knows the word best just after hearing it.
SPEECH_HOLD_SECONDS = 0.16


def speech_frames(utterance, start, first, end, frame_length, frame_step, hold=0):
    """Which of the stream's frames `first .. end - 1` hold speech of `utterance`.

    The utterance (clean, as recorded) starts at stream sample `start`; a
    frame is speech when the utterance's energy over the frame's samples is
    within `SPEECH_RANGE_DB` of its loudest frame's, or when one of the
    `hold` frames before it is. Returns a bool array of `end - first` entries.
    """
    frames = np.arange(first, end)
    if not len(frames):
        return np.zeros(0, bool)
    # The utterance's samples under each frame (zeros outside it).
    offsets = frames[:, None] * frame_step - start + np.arange(frame_length)
    inside = (offsets >= 0) & (offsets < len(utterance))
    samples = np.where(inside, utterance[np.clip(offsets, 0, len(utterance) - 1)], 0.0)
    energy = np.mean(np.square(samples, dtype="float64"), axis=1)
    peak = energy.max()
    if peak <= 0.0:
        return np.zeros(len(frames), bool)
    speech = energy >= peak * 10 ** (-SPEECH_RANGE_DB / 10)
    held = speech.copy()
    for lag in range(1, min(int(hold), len(speech) - 1) + 1):
        held[lag:] |= speech[:-lag]
    return held


def _checked_noise(noise):
    """The background recordings as float32 mono arrays, or a ValueError naming the bad one."""
    if isinstance(noise, np.ndarray) and noise.ndim == 1:
        noise = [noise]
    checked = []
    for i, recording in enumerate(noise):
        recording = np.asarray(recording)
        if recording.ndim != 1:
            raise ValueError(
                f"Noise recording {i} has shape {recording.shape}: each must be a mono "
                "waveform (samples,). Mix stereo down first."
            )
        if recording.size == 0:
            raise ValueError(f"Noise recording {i} is empty.")
        if not np.isfinite(recording).all():
            raise ValueError(f"Noise recording {i} holds NaN or Inf samples.")
        if not np.any(recording):
            raise ValueError(
                f"Noise recording {i} is all zeros: its level cannot be set."
            )
        checked.append(recording.astype("float32"))
    return checked or None


class KeywordStream:
    """A never-ending keyword stream: utterances at random SNR between gaps of noise.

    Segment i is a gap of `gap_seconds` of background noise followed by an
    utterance drawn from `dataset`, mixed into the same continuous noise at
    an SNR drawn from `snr_db`. Audio is turned into frames by `features`
    (default MFCC) and `mask` (default `TemporalIntensityMask`, or
    `"energy"`, or `"truth"`: the utterance's span, or `"speech"`: the
    utterance's frames that hold speech in the clean recording) block by
    block, so the
    memory used is flat however long the stream; a block is computed with
    `context_seconds` of the audio before it, so causal masks see the same
    history they would see on the whole stream. Frame t is labelled with
    the utterance's class when its centre lies inside the utterance and
    m_t = 1, else `noise_label`.

    Args:
        dataset: an `AudioDataset` (labels and sample rate are taken from it).
        noise: list of background waveforms at the dataset's rate, each scaled
            to `noise_rms` and cycled from a random offset; or None for silence
            (-80 dBFS dither). Mixed audio is clipped to [-1, 1].
        num_segments: utterances in the stream (None: endless, for `chunks`).
        snr_db: a number or (min, max) in dB, utterance power (over its active
            part) against the noise's. Up to `SPEECH_CEILING_DB` the speech is
            raised above noise at `noise_rms`; above it the speech stays at that
            level and the block's noise is lowered (a quieter room, not a
            louder talker), so a 40 dB stream does not clip.
        gap_seconds: (min, max) length of the gaps.
        noise_rms: RMS level the noise is scaled to.
        features: a feature layer (`keras_resetfree.features.MFCC` by default).
        mask: `"temporal_intensity"`, `"energy"`, `"truth"`, `"speech"`, or a
            mask layer framed like `features`. `"truth"` marks every frame of
            the utterance's clip, its silent lead-in and tail included;
            `"speech"` only the frames within `SPEECH_RANGE_DB` of the clip's
            loudest and the `SPEECH_HOLD_SECONDS` after them, measured on the
            clean clip before the noise is mixed in, so that labels do not
            depend on the SNR (for training streams: a device has no clean
            recording).
        classes: restrict to these label indices (default all).
        noise_label: label of noise frames.
        noise_classes: classes whose utterances are mixed in like the others
            but whose frames are all noise frames (uniform target), e.g.
            `_silence_`; their segments are kept, so scoring sees them.
        augmentation: a `keras_resetfree.streams.Augmentation` drawn per
            utterance (time shift, speed, block gain), or None.
        class_shares: `{class: share}`, the share of the stream's utterances
            drawn from each named class (e.g. more `_unknown_` words than the
            dataset holds, as a live microphone hears); the other classes
            share the rest in proportion to their clips. None: every clip is
            equally likely.
        seed: seed of every draw (order, gaps, SNRs, noise offsets).
        context_seconds: audio history given to each block's computation.
        keep_waveform: keep the mixed audio in the Streams (for plots).
    """

    def __init__(
        self,
        dataset,
        noise=None,
        num_segments=100,
        snr_db=(5.0, 20.0),
        gap_seconds=(0.3, 1.5),
        noise_rms=0.01,
        features=None,
        mask="temporal_intensity",
        classes=None,
        noise_label=-1,
        noise_classes=(),
        augmentation=None,
        seed=0,
        context_seconds=2.0,
        keep_waveform=False,
        class_shares=None,
    ):
        from keras_resetfree import features as feature_layers
        from keras_resetfree import masks

        self.dataset = dataset
        self.sample_rate = dataset.sample_rate
        self.noise = _checked_noise(noise) if noise is not None else None
        self.num_segments = num_segments
        self.snr_db = (snr_db, snr_db) if np.isscalar(snr_db) else tuple(snr_db)
        self.gap_seconds = tuple(gap_seconds)
        for name, pair in (("snr_db", self.snr_db), ("gap_seconds", self.gap_seconds)):
            if len(pair) != 2 or not all(np.isfinite(pair)) or pair[0] > pair[1]:
                raise ValueError(
                    f"{name} must be a finite number or (min, max); got {pair}."
                )
        if self.gap_seconds[0] < 0:
            raise ValueError(f"gap_seconds must be >= 0, got {self.gap_seconds}.")
        self.noise_rms = float(noise_rms)
        if not math.isfinite(self.noise_rms) or self.noise_rms <= 0:
            raise ValueError(f"noise_rms must be > 0 and finite, got {noise_rms!r}.")
        self.features = features or feature_layers.MFCC(self.sample_rate)
        rate = getattr(self.features, "sample_rate", None)
        if rate is not None and int(rate) != int(self.sample_rate):
            raise ValueError(
                f"The feature layer expects {rate} Hz audio; the dataset is at "
                f"{self.sample_rate} Hz. Load the dataset at {rate} Hz "
                f"(sample_rate={rate}) or build the features for {self.sample_rate} Hz."
            )
        step, length = self.features.frame_step, self.features.frame_length
        if mask == "temporal_intensity":
            mask = masks.TemporalIntensityMask(length, step)
        elif mask == "energy":
            mask = masks.EnergyMask(length, step)
        elif isinstance(mask, str) and mask not in ("truth", "speech"):
            raise ValueError(
                "mask must be 'temporal_intensity', 'energy', 'truth', 'speech' or a "
                f"mask layer; got {mask!r}."
            )
        elif not isinstance(mask, str) and (mask.frame_step, mask.frame_length) != (
            step,
            length,
        ):
            raise ValueError(
                "The mask layer must frame like the features (frame_length, frame_step)."
            )
        self.mask = mask
        self.classes = (
            np.unique(dataset.labels) if classes is None else np.asarray(classes)
        )
        self.pool = np.flatnonzero(np.isin(dataset.labels, self.classes))
        if self.pool.size == 0:
            raise ValueError(
                f"No utterance of classes {self.classes.tolist()} in the dataset."
            )
        self.noise_label = noise_label
        self.noise_classes = tuple(int(c) for c in noise_classes)
        self.class_shares = dict(class_shares or {})
        self._draw = self._clip_probabilities()
        self.augmentation = augmentation
        self.seed = seed
        self.context = int(math.ceil(context_seconds * self.sample_rate / step)) * step
        self.keep_waveform = keep_waveform
        self.frame_rate = self.sample_rate / step

    def _clip_probabilities(self):
        """The probability of drawing each clip of `pool` (None: uniform), from `class_shares`."""
        if not self.class_shares:
            return None
        labels = np.asarray(self.dataset.labels)[self.pool]
        probabilities = np.zeros(self.pool.size)
        for label, share in self.class_shares.items():
            if not isinstance(share, int | float) or not 0 <= share <= 1:
                raise ValueError(
                    f"class_shares[{label!r}] must be a share in [0, 1], got {share!r}."
                )
            named = labels == label
            if not named.any():
                raise ValueError(
                    f"class_shares names class {label!r}, which has no utterance "
                    f"among the stream's classes {self.classes.tolist()}."
                )
            probabilities[named] = share / named.sum()
        rest = ~np.isin(labels, list(self.class_shares))
        left = 1.0 - sum(self.class_shares.values())
        if left < -1e-9 or (not rest.any() and abs(left) > 1e-9):
            raise ValueError(
                f"class_shares {self.class_shares} must sum to at most 1 (exactly 1 "
                "when they name every class)."
            )
        if rest.any():
            probabilities[rest] = max(left, 0.0) / rest.sum()
        return probabilities / probabilities.sum()

    def _noise_source(self, rng):
        """A function `noise(n)`: the next `n` samples of an endless noise at `noise_rms`."""
        if self.noise is None:
            return lambda n: (rng.normal(size=n) * _DITHER_RMS).astype("float32")
        # Each recording at the same RMS, so quiet ones are not drowned by loud ones.
        bed = np.concatenate(
            [n / (np.sqrt(np.mean(n**2)) + 1e-12) * self.noise_rms for n in self.noise]
        )
        bed = np.clip(bed, -1.0, 1.0)
        position = int(rng.integers(len(bed)))

        def noise(n):
            nonlocal position
            index = (position + np.arange(n)) % len(bed)
            position = (position + n) % len(bed)
            return bed[index]

        return noise

    def _blocks(self):
        """Yields `(audio, segment or None)`: a gap then an utterance mixed into noise."""
        rng = np.random.default_rng(self.seed)
        noise = self._noise_source(rng)
        position, count, quieter = 0, 0, 1.0
        while self.num_segments is None or count < self.num_segments:
            gap = noise(int(rng.uniform(*self.gap_seconds) * self.sample_rate))
            if self._draw is None:
                choice = int(self.pool[rng.integers(self.pool.size)])
            else:
                choice = int(self.pool[rng.choice(self.pool.size, p=self._draw)])
            utterance = self.dataset.waveforms[choice]
            if self.augmentation is not None:
                utterance = self.augmentation.utterance(
                    utterance, self.sample_rate, rng
                )
            peak = float(np.abs(utterance).max()) if len(utterance) else 0.0
            if peak == 0.0:
                path = self.dataset.paths[choice] if self.dataset.paths else ""
                raise ValueError(
                    f"Utterance {choice} ({path or 'no file'}) of class "
                    f"{self.dataset.label_names[self.dataset.labels[choice]]!r} is "
                    "silent (all samples zero): its SNR cannot be set. Remove it "
                    "from the dataset."
                )
            active = utterance[np.abs(utterance) > 0.1 * peak]
            power = float(np.mean(active**2))
            noise_power = (
                self.noise_rms**2 if self.noise is not None else _DITHER_RMS**2
            )
            snr = rng.uniform(*self.snr_db)
            quieter = 1.0
            if self.noise is not None and snr > SPEECH_CEILING_DB:
                quieter = 10 ** ((SPEECH_CEILING_DB - snr) / 20)
                snr = SPEECH_CEILING_DB
            gain = math.sqrt(noise_power / power * 10 ** (snr / 10))
            background = noise(len(utterance))
            if quieter != 1.0:
                gap, background = gap * quieter, background * quieter
            block = np.concatenate([gap, background + gain * utterance])
            if self.augmentation is not None:
                block = block * self.augmentation.block_gain(rng)
            start = position + len(gap)
            yield (
                np.clip(block, -1.0, 1.0).astype("float32"),
                (
                    start,
                    start + len(utterance),
                    int(self.dataset.labels[choice]),
                ),
                utterance,
            )
            position += len(gap) + len(utterance)
            count += 1
        # The tail keeps the last block's noise level.
        yield noise(int(self.gap_seconds[1] * self.sample_rate)) * quieter, None, None

    def chunks(self):
        """Yields consecutive `Stream` pieces, one per segment (the first frames of
        the stream wait for one frame of audio). Segments are in global frame indices.
        """
        step, length = self.features.frame_step, self.features.frame_length
        tail, tail_start, next_frame = np.zeros(0, "float32"), 0, 0
        pending = []
        for block, segment, utterance in self._blocks():
            audio = np.concatenate([tail, block])
            end_sample = tail_start + len(audio)
            count = (end_sample - length) // step + 1 if end_sample >= length else 0
            if segment is not None:
                first, end = frame_span(segment[0], segment[1], length, step)
                speech = None
                if self.mask == "speech":
                    speech = speech_frames(
                        utterance,
                        segment[0],
                        first,
                        end,
                        length,
                        step,
                        hold=round(SPEECH_HOLD_SECONDS * self.sample_rate / step),
                    )
                pending.append((first, end, segment[2], speech))
            if count <= next_frame:
                tail = audio
                continue
            offset = next_frame - tail_start // step
            features = self.features.compute_numpy(audio)[offset:]
            frames = np.arange(next_frame, count)
            inside = np.zeros(len(frames), bool)
            labels = np.full(len(frames), self.noise_label, "int32")
            done = [s[:3] for s in pending if s[1] <= count]
            spoken = np.zeros(len(frames), bool)
            for first, end, label, speech in pending:
                if label in self.noise_classes:
                    continue
                hit = (frames >= first) & (frames < end)
                inside |= hit
                labels[hit] = label
                if speech is not None:
                    spoken[hit] = speech[frames[hit] - first]
            intensity = None
            if isinstance(self.mask, TemporalIntensityMask):
                # Kept so that Stream.with_mask_threshold can relabel cheaply.
                intensity = self.mask.compute_numpy(audio, "normalized_intensity")[
                    offset:
                ]
                mask = (intensity > 1.0 - self.mask.threshold).astype("float32")
            elif self.mask == "truth":
                mask = inside.astype("float32")
            elif self.mask == "speech":
                mask = spoken.astype("float32")
            else:
                mask = self.mask.compute_numpy(audio)[offset:].astype("float32")
            labels[mask == 0] = self.noise_label
            waveform = None
            if self.keep_waveform:
                waveform = audio[
                    next_frame * step - tail_start : count * step - tail_start
                ]
            yield Stream(
                features.astype("float32"),
                labels,
                mask,
                np.asarray(done, "int64").reshape(-1, 3),
                self.frame_rate,
                list(self.dataset.label_names),
                waveform,
                self.sample_rate,
                self.noise_label,
                intensity,
                self.noise_classes,
            )
            pending = [s for s in pending if s[1] > count]
            next_frame = count
            tail_start = max(tail_start, next_frame * step - self.context)
            tail = audio[tail_start - (end_sample - len(audio)) :]

    def build(self, verbose=0):
        """The whole stream as one `Stream` (needs a finite `num_segments`).

        `verbose`: 0 silent, 1 a progress bar over the utterances, 2 one line
        at the end (as in Keras's `fit`).
        """
        if self.num_segments is None:
            raise ValueError(
                "An endless KeywordStream (num_segments=None) can only be iterated with chunks()."
            )
        if not verbose:
            return Stream.concatenate(self.chunks())
        progress = keras.utils.Progbar(
            self.num_segments, verbose=verbose, unit_name="utterance"
        )

        def counted():
            done = 0
            for piece in self.chunks():
                if len(piece.segments):  # the trailing noise adds none: no second line
                    done += len(piece.segments)
                    progress.update(min(done, self.num_segments))
                yield piece

        return Stream.concatenate(counted())
