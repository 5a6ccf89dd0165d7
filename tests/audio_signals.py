"""Synthetic test signals with known on/off segments."""

import numpy as np

SR = 16000


def on_off_signal(kind, snr_db, seed=0, seconds=6.0):
    """Background noise with 3 events (tone, chirp or noise burst) at `snr_db`.

    Returns `(waveform, on)` where `on` marks the event samples.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    noise = rng.normal(size=n) * 0.01
    on = np.zeros(n, bool)
    event = np.zeros(n)
    for start in (1.0, 2.8, 4.5):
        length = rng.uniform(0.4, 0.8)
        part = (t >= start) & (t < start + length)
        local = t[part] - start
        if kind == "tone":
            wave = np.sin(2 * np.pi * rng.uniform(300, 2000) * local)
        elif kind == "chirp":
            f0, f1 = 200.0, 3000.0
            wave = np.sin(
                2 * np.pi * (f0 * local + (f1 - f0) * local**2 / (2 * length))
            )
        else:
            wave = rng.normal(size=part.sum())
        event[part] = wave
        on |= part
    gain = np.sqrt(np.mean(noise**2) / np.mean(event[on] ** 2) * 10 ** (snr_db / 10))
    return (noise + gain * event).astype("float32"), on


def frame_truth(on, frame_length, frame_step):
    """Frame t is on when most of its samples are."""
    count = 1 + (len(on) - frame_length) // frame_step
    index = np.arange(count)[:, None] * frame_step + np.arange(frame_length)
    return on[index].mean(-1) > 0.5


def precision_recall(mask, truth):
    mask, truth = np.asarray(mask) > 0.5, np.asarray(truth)
    tp = np.sum(mask & truth)
    return tp / max(mask.sum(), 1), tp / max(truth.sum(), 1)
