"""The Free Spoken Digit Dataset (FSDD): `recordings/{digit}_{speaker}_{index}.wav`, 8 kHz."""

from keras_resetfree.datasets.audio_dataset import AudioDataset, read_files
from keras_resetfree.datasets.paths import data_dir


def load_fsdd(
    path=None,
    split=None,
    by="index",
    test_speakers=("theo",),
    sample_rate=8000,
    on_error="raise",
):
    """Loads FSDD as an `AudioDataset` with labels 0-9.

    Args:
        path: the dataset folder (holding `recordings/`), else `data_dir("fsdd")`.
        split: `"train"`, `"test"` or None.
        by: `"index"`: the upstream convention, indices 0-4 of each speaker and
            digit are test; `"speaker"`: the `test_speakers` are test, the others train.
        test_speakers: speakers held out with `by="speaker"`.
        sample_rate: output rate (the recordings are 8 kHz; others are resampled).
        on_error: `"raise"` or `"skip"`.
    """
    root = data_dir("fsdd", path)
    recordings = root / "recordings" if (root / "recordings").is_dir() else root
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be train, test or None; got {split!r}.")
    if by not in ("index", "speaker"):
        raise ValueError(f"by must be 'index' or 'speaker'; got {by!r}.")
    entries = []
    for file in sorted(recordings.glob("*.wav")):
        parts = file.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise ValueError(
                f"FSDD file name {file.name} is not <digit>_<speaker>_<index>.wav."
            )
        digit, speaker, index = int(parts[0]), parts[1], int(parts[2])
        test = index < 5 if by == "index" else speaker in test_speakers
        if split is None or (split == "test") == test:
            entries.append((file, digit, speaker))
    if not entries:
        raise FileNotFoundError(
            f"No FSDD recordings for split={split!r} in {recordings}."
        )
    waveforms, labels, speakers, paths, skipped = read_files(
        entries, sample_rate, on_error
    )
    names = [str(d) for d in range(10)]
    return AudioDataset(waveforms, labels, names, speakers, paths, sample_rate, skipped)
