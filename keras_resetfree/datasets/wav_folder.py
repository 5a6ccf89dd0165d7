"""Any folder of labelled WAV files: one subfolder per label."""

from pathlib import Path

from keras_resetfree.datasets.audio_dataset import AudioDataset, read_files


def load_wav_folder(
    path, sample_rate=16000, labels=None, on_error="raise", pattern="*.wav"
):
    """Loads `path/<label>/*.wav` as an `AudioDataset`.

    Args:
        path: the folder.
        sample_rate: output rate (files at other rates are resampled).
        labels: label names in order; default the sorted subfolder names.
        on_error: `"raise"` or `"skip"`.
        pattern: the file pattern inside each label folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"No folder {root}.")
    folders = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    names = list(labels) if labels is not None else folders
    missing = [n for n in names if n not in folders]
    if missing:
        raise FileNotFoundError(f"Folder {root} has no subfolder for labels {missing}.")
    entries = [
        (file, index, "")
        for index, name in enumerate(names)
        for file in sorted((root / name).glob(pattern))
    ]
    if not entries:
        raise FileNotFoundError(f"No files matching {pattern} under {root}.")
    waveforms, labels_, speakers, paths, skipped = read_files(
        entries, sample_rate, on_error
    )
    return AudioDataset(
        waveforms, labels_, names, speakers, paths, sample_rate, skipped
    )
