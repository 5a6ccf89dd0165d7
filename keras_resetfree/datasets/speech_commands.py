"""Google Speech Commands, in its standard folder layout."""

from pathlib import Path

from keras_resetfree.datasets.audio_dataset import AudioDataset, read_files
from keras_resetfree.datasets.audio_io import load_audio
from keras_resetfree.datasets.paths import data_dir
from keras_resetfree.datasets.splits import speaker_partition

TEN_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE, NOISE = "_unknown_", "_silence_", "_background_noise_"
ARCHIVE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"


def _speaker(path):
    # "<speaker>_nohash_<n>.wav", or "<word>_<speaker>_nohash_<n>.wav.wav" in _unknown_.
    return path.name.split("_nohash_")[0].split("_")[-1]


def _listed(root, name):
    listing = root / name
    if not listing.is_file():
        return None
    return {line.strip() for line in listing.read_text().splitlines() if line.strip()}


def speech_commands_dir(path=None, download=False):
    """The Speech Commands folder: found by `data_dir("speech_commands", path)`.

    With `download=True` and nothing found, the official v0.02 archive
    (2.3 GB) is downloaded into the Keras cache with `keras.utils.get_file`.
    """
    try:
        return data_dir("speech_commands", path)
    except FileNotFoundError:
        if not download:
            raise
    import keras

    archive = keras.utils.get_file(
        "speech_commands_v0.02.tar.gz",
        ARCHIVE_URL,
        extract=True,
        cache_subdir="keras_resetfree",
    )
    return Path(archive).with_suffix("").with_suffix("")


def load_speech_commands(
    path=None,
    words=TEN_WORDS,
    split=None,
    unknown=True,
    silence=True,
    sample_rate=16000,
    validation_percent=10.0,
    test_percent=10.0,
    on_error="raise",
    download=False,
):
    """Loads Speech Commands (one folder per word) as an `AudioDataset`.

    Labels are `words` in order, then `_unknown_` (every other word folder,
    and the `_unknown_` folder when there is one) if `unknown`, then
    `_silence_` (the `_silence_` folder) if `silence`.

    The split uses `validation_list.txt` / `testing_list.txt` when the
    folder has them (the official archive), else a deterministic split by
    speaker id (`speaker_partition`), so no speaker is in two partitions.

    Args:
        path: the dataset folder (else `data_dir("speech_commands")`).
        words: the keywords, in label order.
        split: `"train"`, `"validation"`, `"test"` or None (everything).
        unknown, silence: include the `_unknown_` / `_silence_` classes.
        sample_rate: output rate (the dataset is 16 kHz; other rates are resampled).
        validation_percent, test_percent: sizes of the speaker split.
        on_error: `"raise"` at the first bad file, or `"skip"` it with a warning.
        download: fetch the official archive into the Keras cache when nothing is found.

    Returns:
        An `AudioDataset`.
    """
    root = speech_commands_dir(path, download)
    if split not in (None, "train", "validation", "test"):
        raise ValueError(
            f"split must be train, validation, test or None; got {split!r}."
        )
    missing = [w for w in words if not (root / w).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"Speech Commands folder {root} has no folder for {missing}."
        )
    names = (
        list(words) + ([UNKNOWN] if unknown else []) + ([SILENCE] if silence else [])
    )
    validation, testing = (
        _listed(root, "validation_list.txt"),
        _listed(root, "testing_list.txt"),
    )

    def partition(file, folder):
        if validation is not None and testing is not None:
            relative = f"{folder}/{file.name}"
            return (
                "validation"
                if relative in validation
                else "test"
                if relative in testing
                else "train"
            )
        return speaker_partition(_speaker(file), validation_percent, test_percent)

    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE):
        if folder.name in words:
            label = names.index(folder.name)
        elif folder.name == SILENCE:
            if not silence:
                continue
            label = names.index(SILENCE)
        elif unknown:
            label = names.index(UNKNOWN)
        else:
            continue
        for file in sorted(folder.glob("*.wav")):
            if split is None or partition(file, folder.name) == split:
                entries.append((file, label, _speaker(file)))
    waveforms, labels, speakers, paths, skipped = read_files(
        entries, sample_rate, on_error
    )
    return AudioDataset(waveforms, labels, names, speakers, paths, sample_rate, skipped)


def load_background_noise(path=None, sample_rate=16000):
    """The `_background_noise_` recordings as a list of float32 waveforms (sorted by name)."""
    folder = speech_commands_dir(path) / NOISE
    if not folder.is_dir():
        raise FileNotFoundError(f"No {NOISE} folder in {folder.parent}.")
    return [load_audio(file, sample_rate)[0] for file in sorted(folder.glob("*.wav"))]
