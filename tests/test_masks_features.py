import wave

import keras
import numpy as np
import pytest

from keras_resetfree.features import MFCC
from keras_resetfree.masks import EnergyMask, TemporalIntensityMask
from tests.audio_signals import SR, frame_truth, on_off_signal, precision_recall


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("kind", ["tone", "chirp", "noise"])
@pytest.mark.parametrize("snr_db", [20, 10, 5, 0])
def test_temporal_intensity_mask_finds_segments(kind, snr_db):
    x, on = on_off_signal(kind, snr_db)
    mask = _np(TemporalIntensityMask()(x))
    precision, recall = precision_recall(mask, frame_truth(on, 480, 320))
    print(
        f"TemporalIntensityMask {kind} {snr_db} dB: precision {precision:.2f} recall {recall:.2f}"
    )
    if snr_db >= 5:  # the 5-frame smoothing adds a short tail after each event
        assert precision >= 0.8 and recall >= 0.95
    else:  # an event only 3 dB above the noise: fewer frames stand out of it
        assert precision >= 0.9 and recall >= 0.3


@pytest.mark.parametrize("kind", ["tone", "chirp", "noise"])
@pytest.mark.parametrize("snr_db", [20, 10])
def test_energy_mask_finds_segments(kind, snr_db):
    x, on = on_off_signal(kind, snr_db)
    mask = _np(EnergyMask()(x))
    precision, recall = precision_recall(mask, frame_truth(on, 480, 320))
    print(
        f"EnergyMask {kind} {snr_db} dB: precision {precision:.2f} recall {recall:.2f}"
    )
    assert precision >= 0.9 and recall >= 0.9


def test_energy_mask_margin_is_absolute():
    # At 5 dB SNR an event is ~6 dB above the noise: at the default margin it
    # is mostly missed, which is why the temporal-intensity mask is the default.
    x, on = on_off_signal("tone", 5)
    _, recall = precision_recall(_np(EnergyMask()(x)), frame_truth(on, 480, 320))
    assert recall < 0.5
    _, recall = precision_recall(
        _np(EnergyMask(threshold_db=3.0)(x)), frame_truth(on, 480, 320)
    )
    assert recall > 0.9


def test_stationary_noise_is_not_informative():
    x = (np.random.default_rng(0).normal(size=3 * SR) * 0.05).astype("float32")
    assert _np(TemporalIntensityMask()(x)).mean() < 0.02
    assert _np(EnergyMask()(x)).mean() < 0.02


@pytest.mark.parametrize("layer_cls", [TemporalIntensityMask, EnergyMask, MFCC])
def test_causal_and_frame_aligned(layer_cls):
    """Frame t depends only on samples up to its end: truncating the audio leaves it unchanged."""
    x, _ = on_off_signal("chirp", 10, seconds=3.0)
    layer = layer_cls()
    full = _np(layer(x))
    n_frames = 1 + (len(x) - 480) // 320
    assert full.shape[0] == n_frames
    cut = 70  # frames: keep the samples up to the end of frame 69
    part = _np(layer(x[: 69 * 320 + 480]))
    assert part.shape[0] == cut
    np.testing.assert_allclose(part, full[:cut], atol=1e-4)


@pytest.mark.parametrize("layer_cls", [TemporalIntensityMask, EnergyMask, MFCC])
def test_batched_equals_unbatched_and_config(layer_cls):
    x, _ = on_off_signal("noise", 10, seconds=2.0)
    layer = layer_cls()
    single = _np(layer(x))
    batch = _np(layer(np.stack([x, x * 0.5])))
    np.testing.assert_allclose(batch[0], single, atol=1e-5)
    clone = layer_cls.from_config(layer.get_config())
    np.testing.assert_allclose(_np(clone(x)), single, atol=1e-6)


@pytest.mark.parametrize("layer_cls", [TemporalIntensityMask, EnergyMask, MFCC])
def test_runs_in_tf_data_and_in_a_model(layer_cls):
    import tensorflow as tf

    x, _ = on_off_signal("tone", 10, seconds=2.0)
    layer = layer_cls()
    expected = _np(layer(x[None]))
    ds = tf.data.Dataset.from_tensor_slices(np.stack([x, x])).batch(2).map(layer)
    got = next(iter(ds)).numpy()
    np.testing.assert_allclose(got[0], expected[0], atol=1e-4)
    inputs = keras.Input((len(x),))
    model = keras.Model(inputs, layer_cls()(inputs))
    np.testing.assert_allclose(_np(model(x[None])), expected, atol=1e-4)


@pytest.mark.parametrize("layer_cls", [TemporalIntensityMask, EnergyMask, MFCC])
def test_bad_audio(layer_cls):
    layer = layer_cls()
    good = np.zeros(SR, "float32")
    with pytest.raises(ValueError, match="multichannel"):
        layer(np.zeros((SR, 2), "float32"))
    with pytest.raises(ValueError, match="multichannel"):
        layer(np.zeros((1, SR, 2), "float32"))
    with pytest.raises(ValueError, match="integer PCM"):
        layer(good + 1000.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        bad = good.copy()
        bad[5] = np.nan
        layer(bad)
    with pytest.raises(ValueError, match="shorter than one frame"):
        layer(np.zeros(100, "float32"))
    with pytest.raises(ValueError, match="dtype int16"):
        layer(np.zeros(SR, "int16"))


def test_mfcc_matches_tf_signal_reference():
    """An independent computation: tf.signal's STFT, mel matrix and MFCCs."""
    import tensorflow as tf

    x, _ = on_off_signal("chirp", 10, seconds=2.0)
    x = np.stack([x, np.roll(x, 1000)])
    ours = _np(MFCC(16000, 480, 320, 40, 13)(x))
    stft = tf.signal.stft(x, 480, 320, fft_length=512, window_fn=tf.signal.hann_window)
    mel = tf.tensordot(
        tf.abs(stft) ** 2,
        tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 7600.0),
        1,
    )
    reference = tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + 1e-6))[
        ..., :13
    ]
    np.testing.assert_allclose(ours, reference.numpy(), atol=2e-3, rtol=1e-4)


def _read_wav(path):
    with wave.open(str(path)) as f:
        assert f.getframerate() == SR and f.getnchannels() == 1
        return (
            np.frombuffer(f.readframes(f.getnframes()), "<i2").astype("float32")
            / 32768.0
        )


def test_mask_marks_keywords_in_speech_commands(shared_data):
    """Keywords from Speech Commands mixed into `_background_noise_` at 10 dB SNR."""
    root = shared_data / "speech_commands"
    rates = []
    for word, noise_name in (
        ("yes", "exercise_bike"),
        ("stop", "doing_the_dishes"),
        ("left", "pink_noise"),
    ):
        # The recordings open with near-silence: take the noise from 10 s in.
        noise = _read_wav(root / "_background_noise_" / f"{noise_name}.wav")[10 * SR :]
        clip = _read_wav(sorted((root / word).glob("*.wav"))[0])
        start = 2 * SR  # 2 s of noise, the 1 s clip, 1 s of noise
        bed = noise[: 4 * SR].copy()
        speech = np.abs(clip) > 0.1 * np.abs(clip).max()
        active = np.flatnonzero(speech)
        word_power = np.mean(clip[active[0] : active[-1]] ** 2)
        gain = np.sqrt(np.mean(bed**2) / word_power * 10 ** (10 / 10))
        bed[start : start + SR] += gain * clip
        bed /= max(1.0, np.abs(bed).max())
        mask = _np(TemporalIntensityMask()(bed.astype("float32")))
        on = np.zeros(4 * SR, bool)
        on[start + active[0] : start + active[-1]] = True
        truth = frame_truth(on, 480, 320)
        clip_frames = frame_truth(
            np.r_[np.zeros(start), np.ones(SR), np.zeros(SR)] > 0, 480, 320
        )
        # Inference also sees the frames just after the clip through the smoothing: allow 5.
        clip_frames |= np.r_[np.zeros(5, bool), clip_frames[:-5]]
        noise_rate = np.mean(mask[~clip_frames] > 0)
        word_rate = np.mean(mask[truth] > 0)
        print(
            f"{word} in {noise_name} at 10 dB: word frames marked {word_rate:.2f}, "
            f"noise-only frames marked {noise_rate:.2f}"
        )
        rates.append((word_rate, noise_rate))
    for word_rate, noise_rate in rates:
        # Real background noise has events of its own (dishes, pedals): the
        # mask must still mark a word's frames far more often than the noise's.
        assert word_rate >= 0.35 and word_rate >= 3 * noise_rate, rates


def test_bad_audio_inside_tf_data_is_an_error():
    import tensorflow as tf

    layer = TemporalIntensityMask()
    for bad, message in (
        (np.full(SR, 3000.0, "float32"), "integer PCM"),
        (np.full(SR, np.nan, "float32"), "NaN"),
    ):
        ds = tf.data.Dataset.from_tensors(bad).map(layer)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            next(iter(ds))


@pytest.mark.parametrize("layer_cls", [TemporalIntensityMask, EnergyMask, MFCC])
def test_numpy_path_equals_the_layer(layer_cls):
    """`compute_numpy` (what the stream builders use) runs the same code in NumPy."""
    x, _ = on_off_signal("chirp", 10, seconds=2.0)
    layer = layer_cls()
    expected = _np(layer(x))
    got = layer.compute_numpy(x)
    if layer_cls is MFCC:
        np.testing.assert_allclose(got, expected, atol=2e-3)
    else:
        assert np.mean(got == expected) > 0.99  # a threshold may flip on rounding
