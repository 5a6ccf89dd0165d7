"""An offline keyword corpus from text-to-speech (espeak-ng, shipped by the espeakng-loader wheel)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_resetfree.datasets.audio_dataset import AudioDataset
from keras_resetfree.datasets.audio_io import resample
from keras_resetfree.datasets.paths import keras_cache_dir

VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan")
# Variants f2, f3 and f5 add breath noise that differs from run to run; the
# others synthesize identical audio for identical input.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f4", "klatt", "klatt2")
_WORKER = Path(__file__).with_name("espeak_worker.py")


def _speak_all(jobs, verbose=0):
    """Synthesizes `jobs` (dicts of speak() arguments) in a fresh process.

    espeak-ng carries state from one utterance to the next inside a process
    (the same call gives a few samples more or less the second time), so a
    fresh interpreter per corpus is what makes the corpus deterministic. The
    worker prints a line per utterance done, for the progress bar.
    """
    import keras

    progress = keras.utils.Progbar(len(jobs), verbose=verbose, unit_name="utterance")
    with (
        tempfile.TemporaryDirectory() as folder,
        tempfile.TemporaryFile("w+") as errors,
    ):
        out = Path(folder) / "speech.npz"
        # stderr to a file: a pipe could fill while the progress lines are read.
        worker = subprocess.Popen(
            [sys.executable, str(_WORKER), str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        worker.stdin.write(json.dumps(jobs))
        worker.stdin.close()
        for done, _ in enumerate(worker.stdout, 1):
            if verbose:
                progress.update(done)
        if worker.wait() != 0:
            errors.seek(0)
            raise RuntimeError(f"espeak-ng synthesis failed:\n{errors.read()[-2000:]}")
        stored = np.load(out)
        return int(stored["rate"]), np.split(
            stored["audio"], np.cumsum(stored["lengths"])[:-1]
        )


def _trim(waveform, threshold=0.02, margin=0.03, sample_rate=16000):
    """Cuts leading and trailing silence, keeping `margin` seconds around the speech."""
    loud = np.flatnonzero(np.abs(waveform) > threshold * np.abs(waveform).max())
    if loud.size == 0:
        return waveform
    pad = int(margin * sample_rate)
    return waveform[max(loud[0] - pad, 0) : loud[-1] + pad]


def _read_cache(cache, expected):
    """The cached `(waveforms, labels, speakers)`, or None (with a warning) when the file is
    damaged or inconsistent: the corpus is then made again and the file replaced."""
    try:
        with np.load(cache, allow_pickle=False) as stored:
            audio, lengths = stored["audio"], stored["lengths"]
            labels, speakers = stored["labels"], stored["speakers"]
        if not (len(lengths) == len(labels) == len(speakers) == expected):
            raise ValueError(
                f"{len(lengths)} lengths, {len(labels)} labels, {len(speakers)} speakers "
                f"for {expected} utterances"
            )
        if lengths.sum() != len(audio) or (lengths <= 0).any():
            raise ValueError(
                f"lengths add to {lengths.sum()}, audio has {len(audio)} samples"
            )
    except Exception as error:  # zip, EOF, missing keys, bad arrays
        warnings.warn(
            f"Keyword cache {cache} is damaged ({type(error).__name__}: {error}); "
            "synthesizing the corpus again.",
            stacklevel=3,
        )
        return None
    waveforms = np.split(audio, np.cumsum(lengths)[:-1])
    return waveforms, labels, speakers.tolist()


def _write_cache(cache, waveforms, labels, speakers):
    """Writes the cache atomically under a name no other process uses; a failed write
    (full disk, read-only folder) leaves no file behind and only warns: the corpus is kept."""
    temporary = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=cache.stem + ".", suffix=".tmp.npz", dir=cache.parent
        )
        with os.fdopen(handle, "wb") as f:
            np.savez_compressed(
                f,
                audio=np.concatenate(waveforms),
                lengths=np.array([len(w) for w in waveforms]),
                labels=np.array(labels, dtype="int32"),
                speakers=np.array(speakers),
            )
        os.replace(temporary, cache)
    except OSError as error:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        warnings.warn(
            f"Could not write the keyword cache {cache} ({error}); the corpus is made "
            "again next time.",
            stacklevel=3,
        )


def synthesize_keywords(
    words=("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
    n_per_word=50,
    sample_rate=16000,
    seed=0,
    rates=(110, 210),
    pitches=(20, 80),
    gains_range=(0.3, 0.9),
    voices=VOICES,
    variants=VARIANTS,
    cache_dir=None,
    verbose=0,
):
    """Makes a labelled keyword corpus offline with espeak-ng text-to-speech.

    Each utterance draws a voice (accent) and a voice variant (male, female,
    klatt), a speaking rate (words per minute), a pitch and pitch range, and
    a gain; the speech is resampled from espeak-ng's 22,050 Hz with soxr,
    trimmed of silence and scaled to the gain. The "speaker" of an utterance
    is its voice+variant, so splits by speaker hold out whole voices.

    Deterministic for a seed: the draws come from `numpy.random.default_rng`,
    and espeak-ng runs in a fresh process per corpus with only the voice
    variants whose output is reproducible. The corpus is cached on disk as a
    compressed `.npz` keyed by every argument, so a second call is instant.

    Args:
        words: the keywords (label order).
        n_per_word: utterances per word.
        sample_rate: output rate, Hz.
        seed: seed of the draws.
        rates, pitches: (min, max) of espeak-ng's rate and pitch (0-99).
        gains_range: (min, max) of the peak amplitude.
        voices, variants: the espeak-ng voices and variants drawn from.
        cache_dir: where to cache (default the Keras cache's keras_resetfree folder).
        verbose: 0 silent, 1 a progress bar while synthesizing, 2 one line at
            the end (a cached corpus prints nothing).

    Returns:
        An `AudioDataset`.
    """
    settings = {
        "words": list(words),
        "n_per_word": int(n_per_word),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "rates": list(rates),
        "pitches": list(pitches),
        "gains": list(gains_range),
        "voices": list(voices),
        "variants": list(variants),
        "version": 2,
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir else keras_cache_dir() / "synthetic_keywords"
    cache = folder / f"keywords_{key}.npz"
    if cache.is_file():
        cached = _read_cache(cache, len(words) * int(n_per_word))
        if cached is not None:
            waveforms, labels, speakers = cached
            return AudioDataset(
                waveforms,
                labels,
                list(words),
                speakers,
                [""] * len(labels),
                sample_rate,
            )
    rng = np.random.default_rng(seed)
    jobs, labels, gains = [], [], []
    for label, word in enumerate(words):
        for _ in range(n_per_word):
            voice = f"{voices[rng.integers(len(voices))]}+{variants[rng.integers(len(variants))]}"
            jobs.append(
                {
                    "text": word,
                    "voice": voice,
                    "rate": int(rng.integers(rates[0], rates[1] + 1)),
                    "pitch": int(rng.integers(pitches[0], pitches[1] + 1)),
                    "pitch_range": int(rng.integers(30, 80)),
                }
            )
            gains.append(rng.uniform(*gains_range))
            labels.append(label)
    rate, speech = _speak_all(jobs, verbose)
    waveforms, speakers = [], []
    for job, gain, raw in zip(jobs, gains, speech):
        wave = _trim(
            resample(raw.astype("float32") / 32768.0, rate, sample_rate),
            sample_rate=sample_rate,
        )
        peak = np.abs(wave).max() if wave.size else 0.0
        if peak == 0:
            raise RuntimeError(
                f"espeak-ng produced silence for {job['text']!r} with voice {job['voice']}."
            )
        waveforms.append((wave * (gain / peak)).astype("float32"))
        speakers.append(job["voice"])
    _write_cache(cache, waveforms, labels, speakers)
    return AudioDataset(
        waveforms,
        np.array(labels, dtype="int32"),
        list(words),
        speakers,
        [""] * len(labels),
        sample_rate,
    )
