"""A labelled set of utterances, as the loaders return it."""

import collections
import warnings
from dataclasses import dataclass, field

import numpy as np

from keras_resetfree.datasets.audio_io import AudioFileError, load_audio


@dataclass
class AudioDataset:
    """Utterances with labels.

    Attributes:
        waveforms: list of float32 mono arrays in [-1, 1].
        labels: int32 array, one label per waveform.
        label_names: the name of each label index.
        speakers: the speaker of each waveform ("" when unknown).
        paths: the file of each waveform ("" for synthesized ones).
        sample_rate: Hz.
        skipped: `(path, kind, message)` of every file skipped with `on_error="skip"`.
    """

    waveforms: list
    labels: np.ndarray
    label_names: list
    speakers: list
    paths: list
    sample_rate: int
    skipped: list = field(default_factory=list)

    def __len__(self):
        return len(self.waveforms)

    def subset(self, indices):
        indices = list(indices)
        return AudioDataset(
            [self.waveforms[i] for i in indices],
            self.labels[indices],
            self.label_names,
            [self.speakers[i] for i in indices],
            [self.paths[i] for i in indices],
            self.sample_rate,
            list(self.skipped),
        )

    def summary(self):
        """One line per label: count and total duration; returned as a string."""
        counts = collections.Counter(self.labels.tolist())
        seconds = collections.defaultdict(float)
        for wave, label in zip(self.waveforms, self.labels):
            seconds[int(label)] += len(wave) / self.sample_rate
        lines = [
            f"{len(self)} utterances, {sum(seconds.values()):.1f} s at {self.sample_rate} Hz, "
            f"{len(set(self.speakers))} speakers, {len(self.skipped)} files skipped"
        ]
        for index, name in enumerate(self.label_names):
            lines.append(
                f"  {name:>12}: {counts.get(index, 0):5d} utterances, {seconds[index]:7.1f} s"
            )
        return "\n".join(lines)


def read_files(entries, sample_rate, on_error, resample_to_rate=True):
    """Reads `(path, label, speaker)` entries into an AudioDataset's fields.

    With `on_error="raise"` the first bad file raises; with `"skip"` every bad
    file is skipped, counted by kind in one warning, and listed in `skipped`.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    waveforms, labels, speakers, paths, skipped = [], [], [], [], []
    for path, label, speaker in entries:
        try:
            waveform, _ = load_audio(path, sample_rate, resample_to_rate)
        except AudioFileError as error:
            if on_error == "raise":
                raise
            skipped.append((str(path), error.kind, str(error)))
            continue
        waveforms.append(waveform)
        labels.append(label)
        speakers.append(speaker)
        paths.append(str(path))
    if skipped:
        reasons = collections.Counter(kind for _, kind, _ in skipped)
        warnings.warn(
            f"Skipped {len(skipped)} of {len(entries)} audio files ("
            + ", ".join(f"{n} x {r}" for r, n in reasons.items())
            + "); see the dataset's `skipped` for each file and reason.",
            stacklevel=3,
        )
    return waveforms, np.asarray(labels, dtype="int32"), speakers, paths, skipped
