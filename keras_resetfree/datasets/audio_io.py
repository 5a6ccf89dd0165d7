"""Decoding and resampling audio files with maintained libraries (soundfile, soxr)."""

import numpy as np


class AudioFileError(ValueError):
    """A file that cannot be used; `kind` says why (corrupt, empty, multichannel, sample_rate, non_finite)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


def _require_audio_extra():
    try:
        import soundfile
        import soxr
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading audio needs the `audio` extra: pip install 'keras-resetfree[audio]' "
            f"(soundfile, soxr). Missing: {error.name}."
        ) from error
    return soundfile, soxr


def resample(waveform, from_rate, to_rate):
    """Resamples a mono float waveform with soxr (high quality)."""
    if from_rate == to_rate:
        return np.asarray(waveform, dtype="float32")
    _, soxr = _require_audio_extra()
    return soxr.resample(
        np.asarray(waveform, dtype="float32"), from_rate, to_rate, quality="HQ"
    ).astype("float32")


def _wav_truncation(path):
    """A message when a RIFF/WAVE file's data chunk claims more bytes than the file holds."""
    import struct

    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        size = f.seek(0, 2)
        position = 12
        while position + 8 <= size:
            f.seek(position)
            name, length = struct.unpack("<4sI", f.read(8))
            if name == b"data":
                # 0 and 0xFFFFFFFF mark a stream whose length was never written.
                available = size - position - 8
                if length not in (0, 0xFFFFFFFF) and length > available:
                    return (
                        f"its data chunk declares {length} bytes but the file holds "
                        f"{available} (truncated)"
                    )
                return None
            position += 8 + length + (length & 1)
    return None


# A float file peaking above this holds integer PCM stored as float, not audio in [-1, 1].
_FLOAT_PEAK_LIMIT = 2.0


def load_audio(path, sample_rate=None, resample_to_rate=True):
    """Reads an audio file as float32 mono in [-1, 1].

    Args:
        path: the file.
        sample_rate: the rate wanted; None keeps the file's.
        resample_to_rate: resample a file at another rate (default); if False,
            a file at another rate is an error.

    Returns:
        `(waveform, sample_rate)`.

    Raises:
        AudioFileError (a ValueError): an empty, corrupt or truncated file, a multichannel file,
            or (with `resample_to_rate=False`) a wrong sample rate; the message
            names the file.
    """
    soundfile, _ = _require_audio_extra()
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        truncated = _wav_truncation(path)
    except Exception as error:  # soundfile raises LibsndfileError / RuntimeError
        raise AudioFileError(
            f"Cannot decode audio file {path}: {error}", "corrupt"
        ) from error
    if truncated:
        raise AudioFileError(f"Audio file {path} is cut short: {truncated}.", "corrupt")
    if data.shape[0] == 0:
        raise AudioFileError(f"Audio file {path} holds no samples.", "empty")
    if data.shape[1] != 1:
        raise AudioFileError(
            f"Audio file {path} has {data.shape[1]} channels; the datasets are mono.",
            "multichannel",
        )
    waveform = data[:, 0]
    if not np.all(np.isfinite(waveform)):
        raise AudioFileError(
            f"Audio file {path} holds NaN or Inf samples.", "non_finite"
        )
    peak = float(np.abs(waveform).max())
    if peak > _FLOAT_PEAK_LIMIT:
        raise AudioFileError(
            f"Audio file {path} holds float samples peaking at {peak:g}, far outside "
            "[-1, 1]: integer PCM stored as float? Scale it (e.g. / 32768) and save again.",
            "range",
        )
    if sample_rate is not None and rate != sample_rate:
        if not resample_to_rate:
            raise AudioFileError(
                f"Audio file {path} is at {rate} Hz, expected {sample_rate} Hz.",
                "sample_rate",
            )
        waveform, rate = resample(waveform, rate, sample_rate), sample_rate
    return waveform, rate
