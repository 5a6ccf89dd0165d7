"""`Stream`: frames of a continual stream with their mask, labels and segment layout."""

import collections
import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Stream:
    """A continual stream, every frame labelled.

    Attributes:
        features: `(frames, features)` float32, the model's input.
        labels: `(frames,)` int32: the segment's class on informative frames
            (m_t = 1), `noise_label` elsewhere.
        mask: `(frames,)` float32 m_t in {0, 1}.
        segments: `(n, 3)` int64 rows `(start_frame, end_frame, class)`, end
            exclusive: where each sample (utterance, image) lies, whatever the
            mask says; the reset baselines reset at `start_frame`.
        frame_rate: frames per second (None for non-audio streams).
        label_names: the name of each class.
        waveform: the audio behind the frames, when kept (for plots).
        sample_rate: the waveform's rate.
        noise_label: the label of noise frames.
        intensity: `(frames,)` the temporal-intensity mask's n_t before its
            threshold, when the stream was built with that mask
            (`with_mask_threshold` relabels from it).
        noise_classes: classes whose segments are all noise frames (e.g.
            `_silence_`): scored as segments, trained towards uniform.
    """

    features: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    segments: np.ndarray
    frame_rate: float = None
    label_names: list = field(default_factory=list)
    waveform: np.ndarray = None
    sample_rate: int = None
    noise_label: int = -1
    intensity: np.ndarray = None
    noise_classes: tuple = ()

    def __len__(self):
        return len(self.labels)

    @staticmethod
    def concatenate(pieces):
        """Joins consecutive pieces (segments already in global frame indices)."""
        pieces = list(pieces)
        if not pieces:
            raise ValueError("Stream.concatenate needs at least one piece.")
        first = pieces[0]
        waves = [p.waveform for p in pieces]
        return Stream(
            np.concatenate([p.features for p in pieces]),
            np.concatenate([p.labels for p in pieces]),
            np.concatenate([p.mask for p in pieces]),
            np.concatenate([p.segments.reshape(-1, 3) for p in pieces]).astype("int64"),
            first.frame_rate,
            first.label_names,
            None if any(w is None for w in waves) else np.concatenate(waves),
            first.sample_rate,
            first.noise_label,
            None
            if any(p.intensity is None for p in pieces)
            else np.concatenate([p.intensity for p in pieces]),
            first.noise_classes,
        )

    def with_mask_threshold(self, threshold):
        """The same stream with the temporal-intensity mask at another threshold, relabelled."""
        if self.intensity is None:
            raise ValueError(
                "This stream has no intensity: build it with the temporal-intensity mask."
            )
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}.")
        mask = (self.intensity > 1.0 - threshold).astype("float32")
        labels = np.full(len(self), self.noise_label, "int32")
        for start, end, label in self.segments:
            if label in self.noise_classes:
                continue
            span = slice(start, end)
            labels[span] = np.where(mask[span] > 0, label, self.noise_label)
        return dataclasses.replace(self, mask=mask, labels=labels)

    def windows(self, length, stride=None):
        """Consecutive training windows `(x, y)`: `(n, length, features)`, `(n, length)`.

        No reset inside a window: each holds several segments and the noise
        between them. `stride` defaults to `length` (no overlap).
        """
        stride = stride or length
        if length > len(self):
            raise ValueError(
                f"Window of {length} frames is longer than the stream ({len(self)})."
            )
        starts = np.arange(0, len(self) - length + 1, stride)
        index = starts[:, None] + np.arange(length)
        return self.features[index], self.labels[index]

    def summary(self):
        """Counts and durations, as a printable string."""
        per_class = collections.Counter(self.segments[:, 2].tolist())
        frames = len(self)
        seconds = (
            f", {frames / self.frame_rate:.1f} s at {self.frame_rate:g} frames/s"
            if self.frame_rate
            else ""
        )
        lines = [
            f"{frames} frames{seconds}, {len(self.segments)} segments, "
            f"{self.mask.mean():.1%} informative frames (m_t = 1), "
            f"{np.mean(self.labels != self.noise_label):.1%} labelled frames"
        ]
        for index, count in sorted(per_class.items()):
            name = (
                self.label_names[index] if index < len(self.label_names) else str(index)
            )
            lines.append(f"  {name:>12}: {count} segments")
        return "\n".join(lines)


def frame_span(start_sample, end_sample, frame_length, frame_step):
    """Frames whose centre lies in `[start_sample, end_sample)`: `(first, end)`, end exclusive."""
    half = frame_length / 2.0
    first = int(np.ceil((start_sample - half) / frame_step))
    end = int(np.ceil((end_sample - half) / frame_step))
    return max(first, 0), max(end, 0)
