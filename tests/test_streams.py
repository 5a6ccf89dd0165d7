import keras
import numpy as np
import pytest

from keras_resetfree import datasets, streams
from keras_resetfree.features import MFCC
from keras_resetfree.masks import TemporalIntensityMask

SR = 16000


def _tone_words(n_per_word=4):
    """A tiny corpus: 3 'words', tones of 3 pitches with different lengths."""
    rng = np.random.default_rng(0)
    waves, labels = [], []
    for label, freq in enumerate((300.0, 800.0, 1500.0)):
        for _ in range(n_per_word):
            t = np.arange(int(rng.uniform(0.3, 0.6) * SR)) / SR
            waves.append(
                (0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))).astype(
                    "float32"
                )
            )
            labels.append(label)
    n = len(waves)
    return datasets.AudioDataset(
        waves, np.array(labels, "int32"), ["low", "mid", "high"], [""] * n, [""] * n, SR
    )


def _noise():
    return [np.random.default_rng(1).normal(size=5 * SR).astype("float32") * 0.05]


def test_keyword_stream_layout_and_labels():
    builder = streams.KeywordStream(
        _tone_words(), _noise(), num_segments=12, snr_db=15, seed=3, keep_waveform=True
    )
    stream = builder.build()
    assert len(stream.segments) == 12
    assert stream.features.shape == (len(stream), 13) and stream.mask.shape == (
        len(stream),
    )
    assert len(stream.waveform) == len(stream) * 320
    # Features computed block by block equal the MFCC of the whole waveform
    # (the kept waveform is each frame's hop: the last frame lacks its tail).
    whole = keras.ops.convert_to_numpy(
        MFCC(SR)(np.r_[stream.waveform, np.zeros(160, "float32")])
    )
    np.testing.assert_allclose(
        stream.features[:-1], whole[: len(stream) - 1], atol=1e-3
    )
    # Labelled frames are informative frames inside a segment, with its class.
    for start, end, label in stream.segments:
        inside = stream.labels[start:end]
        assert set(np.unique(inside)) <= {label, -1}
        assert np.all((inside == label) == (stream.mask[start:end] == 1))
    outside = np.ones(len(stream), bool)
    for start, end, _ in stream.segments:
        outside[start:end] = False
    assert np.all(stream.labels[outside] == -1)
    # The temporal-intensity mask finds most of each tone at 15 dB SNR.
    truth = streams.KeywordStream(
        _tone_words(), _noise(), num_segments=12, snr_db=15, seed=3, mask="truth"
    ).build()
    np.testing.assert_array_equal(truth.segments, stream.segments)
    agreement = np.mean(truth.mask == stream.mask)
    recall = np.sum(truth.mask * stream.mask) / truth.mask.sum()
    print(f"mask vs truth: agreement {agreement:.2f}, recall {recall:.2f}")
    assert agreement > 0.85 and recall > 0.8


def _padded_tone_words():
    """Tones with 0.2 s of silence before and after, as a 1 s clip holds a word."""
    words = _tone_words()
    pad = np.zeros(int(0.2 * SR), "float32")
    words.waveforms = [np.r_[pad, w, pad] for w in words.waveforms]
    return words


def test_speech_mask_marks_the_clean_clips_speech_whatever_the_snr():
    built = {
        (mask, snr): streams.KeywordStream(
            _padded_tone_words(),
            _noise(),
            num_segments=12,
            snr_db=snr,
            seed=3,
            mask=mask,
        ).build()
        for mask in ("speech", "truth")
        for snr in (0.0, 20.0)
    }
    speech, truth = built["speech", 0.0], built["truth", 0.0]
    # Computed on the clean clip: the same frames at 0 and 20 dB.
    np.testing.assert_array_equal(speech.mask, built["speech", 20.0].mask)
    np.testing.assert_array_equal(speech.segments, truth.segments)
    # Within the clip, and leaving out its silent lead-in (0.2 s, 10 frames)
    # that the truth mask counts as the word; its silent tail only after the
    # hold (8 frames) that follows the tone.
    assert np.all(speech.mask <= truth.mask)
    for start, end, label in speech.segments:
        assert not speech.mask[start : start + 8].any()
        assert not speech.mask[end - 1]
        assert speech.mask[start:end].sum() >= 0.5 * (end - start - 20)
        inside = speech.labels[start:end]
        np.testing.assert_array_equal(inside == label, speech.mask[start:end] == 1)


def test_speech_frames_of_a_clip():
    utterance = np.r_[np.zeros(3200), np.ones(3200), np.full(3200, 0.01)]
    # Starting at stream sample 640: frames 0-11 of 30 ms every 20 ms.
    first, end = streams.stream.frame_span(640, 640 + len(utterance), 480, 320)
    speech = streams.keyword_stream.speech_frames(utterance, 640, first, end, 480, 320)
    centres = np.arange(first, end) * 320 + 240 - 640
    # Loud samples under the frame: speech; the silent start and the tail
    # 40 dB down: not.
    expected = (centres >= 3200 - 240) & (centres < 6400 + 240)
    np.testing.assert_array_equal(speech, expected)
    # Held for 2 frames after the last one.
    held = streams.keyword_stream.speech_frames(
        utterance, 640, first, end, 480, 320, hold=2
    )
    last = np.flatnonzero(expected)[-1]
    np.testing.assert_array_equal(
        np.flatnonzero(held & ~expected), [last + 1, last + 2]
    )
    assert not streams.keyword_stream.speech_frames(
        np.zeros(1000), 0, 0, 3, 480, 320
    ).any()
    with pytest.raises(ValueError, match="mask must be .*'speech'"):
        streams.KeywordStream(_tone_words(), mask="clean")


def test_block_masks_match_the_whole_stream_mask():
    stream = streams.KeywordStream(
        _tone_words(), _noise(), num_segments=10, seed=4, keep_waveform=True
    ).build()
    whole = TemporalIntensityMask().compute_numpy(
        np.r_[stream.waveform, np.zeros(160, "float32")]
    )[: len(stream)]
    assert np.mean(whole == stream.mask) > 0.98


def test_build_progress_gives_the_same_stream(capsys):
    def builder():
        return streams.KeywordStream(_tone_words(), _noise(), num_segments=6, seed=3)

    quiet = builder().build()
    assert capsys.readouterr().out == ""
    shown = builder().build(verbose=2)
    assert capsys.readouterr().out.count("6/6") == 1  # one line, not one per piece
    np.testing.assert_array_equal(shown.features, quiet.features)
    np.testing.assert_array_equal(shown.segments, quiet.segments)


def test_reproducible_endless_and_lazy():
    words = _tone_words()
    first = streams.KeywordStream(words, _noise(), num_segments=6, seed=7).build()
    again = streams.KeywordStream(words, _noise(), num_segments=6, seed=7).build()
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.labels, again.labels)
    other = streams.KeywordStream(words, _noise(), num_segments=6, seed=8).build()
    assert len(other) != len(first) or not np.array_equal(other.labels, first.labels)
    endless = streams.KeywordStream(words, None, num_segments=None, seed=1)
    pieces = []
    for piece in endless.chunks():
        pieces.append(piece)
        if len(pieces) == 20:
            break
    joined = streams.Stream.concatenate(pieces)
    assert len(joined.segments) >= 19 and np.all(np.diff(joined.segments[:, 0]) > 0)
    with pytest.raises(ValueError, match="chunks"):
        endless.build()


def test_image_stream():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=20)
    digits = rng.integers(0, 255, size=(15, 28, 28), dtype=np.uint8)
    stream = streams.image_stream(images, labels, digits, num_segments=8, seed=2)
    assert stream.features.shape[1] == 28 and stream.features.max() <= 1.0
    assert len(stream.segments) == 8 and np.all(
        stream.segments[:, 1] - stream.segments[:, 0] == 28
    )
    assert stream.mask.sum() == 8 * 28
    pixels = streams.image_stream(
        images, labels, digits, num_segments=3, pixels=True, seed=2
    )
    assert pixels.features.shape[1] == 1 and np.all(
        pixels.segments[:, 1] - pixels.segments[:, 0] == 784
    )
    with pytest.raises(ValueError, match="alike"):
        streams.image_stream(images, labels, digits[:, :10], num_segments=2)


@pytest.mark.parametrize("delivery", ["tf_data", "py_dataset"])
def test_windows_train_a_model(delivery):
    from keras_resetfree import ResetFreeLoss, layers

    stream = streams.KeywordStream(
        _tone_words(), _noise(), num_segments=20, seed=5
    ).build()
    x, y = stream.windows(100)
    assert x.shape == (len(stream) // 100, 100, 13) and y.shape == x.shape[:2]
    if delivery == "tf_data":
        data = streams.to_tf_dataset(stream, 100, batch_size=4)
    else:
        data = streams.StreamWindows(stream, 100, batch_size=4)
        assert len(data) == int(np.ceil(len(x) / 4))
    inputs = keras.Input((None, 13))
    model = keras.Model(inputs, keras.layers.Dense(3)(layers.GRU(8)(inputs)))
    model.compile(optimizer="adam", loss=ResetFreeLoss(from_logits=True))
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_summary_and_plot(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the plot extra (matplotlib) is not installed"
    )
    stream = streams.KeywordStream(
        _tone_words(), _noise(), num_segments=5, seed=1, keep_waveform=True
    ).build()
    text = stream.summary()
    assert "5 segments" in text and "frames/s" in text
    path = streams.plot_stream(stream, tmp_path / "stream.png", frames=300)
    assert path.stat().st_size > 10_000


def test_speech_commands_stream(shared_data):
    root = shared_data / "speech_commands"
    words = datasets.load_speech_commands(
        root, words=("yes", "no"), unknown=False, silence=False, split="test"
    )
    noise = datasets.load_background_noise(root)
    stream = streams.KeywordStream(
        words, noise, num_segments=15, snr_db=10, seed=0
    ).build()
    print(stream.summary())
    assert len(stream.segments) == 15 and 0.05 < stream.mask.mean() < 0.6


def test_with_mask_threshold_relabels_like_a_rebuilt_stream():
    words, noise = _tone_words(), _noise()
    default = streams.KeywordStream(words, noise, num_segments=8, seed=2).build()
    strict = streams.KeywordStream(
        words, noise, num_segments=8, seed=2, mask=TemporalIntensityMask(threshold=0.5)
    ).build()
    relabelled = default.with_mask_threshold(0.5)
    np.testing.assert_array_equal(relabelled.mask, strict.mask)
    np.testing.assert_array_equal(relabelled.labels, strict.labels)
    assert relabelled.mask.sum() < default.mask.sum()
    truth = streams.KeywordStream(
        words, noise, num_segments=8, seed=2, mask="truth"
    ).build()
    with pytest.raises(ValueError, match="intensity"):
        truth.with_mask_threshold(0.5)


def test_bad_stream_arguments():
    words, noise = _tone_words(), _noise()
    with pytest.raises(ValueError, match=r"No utterance of classes \[7\]"):
        streams.KeywordStream(words, noise, classes=[7])
    with pytest.raises(ValueError, match="frame like the features"):
        streams.KeywordStream(
            words, noise, mask=TemporalIntensityMask(frame_length=400, frame_step=160)
        )
    short = streams.KeywordStream(words, noise, num_segments=2, seed=0).build()
    with pytest.raises(ValueError, match="longer than the stream"):
        short.windows(len(short) + 1)
    with pytest.raises(ValueError, match="threshold must be in"):
        short.with_mask_threshold(1.5)
    with pytest.raises(ValueError, match="at least one piece"):
        streams.Stream.concatenate([])


def test_class_shares_set_how_often_a_class_is_drawn():
    def drawn(**settings):
        stream = streams.KeywordStream(
            _tone_words(), None, num_segments=300, gap_seconds=(0.0, 0.02), **settings
        ).build()
        return np.bincount(np.asarray(stream.segments)[:, 2], minlength=3) / 300

    # Four clips per class: a third each; a share of 0.6 for class 2 leaves
    # 0.2 to each of the others.
    np.testing.assert_allclose(drawn(seed=4), [1 / 3] * 3, atol=0.08)
    np.testing.assert_allclose(
        drawn(seed=4, class_shares={2: 0.6}), [0.2, 0.2, 0.6], atol=0.08
    )
    words = _tone_words()
    for bad, message in (
        ({2: 1.5}, r"class_shares\[2\] must be a share in \[0, 1\], got 1.5"),
        ({7: 0.5}, "names class 7, which has no utterance"),
        ({0: 0.6, 1: 0.6}, "must sum to at most 1"),
        ({0: 0.2, 1: 0.2, 2: 0.2}, "exactly 1 when they name every class"),
    ):
        with pytest.raises(ValueError, match=message):
            streams.KeywordStream(words, None, class_shares=bad)


def test_keyword_stream_refuses_bad_noise_rates_and_snr():
    from keras_resetfree import features

    words = _tone_words()
    with pytest.raises(ValueError, match=r"Noise recording 0 has shape \(100, 2\)"):
        streams.KeywordStream(words, [np.ones((100, 2))])
    with pytest.raises(ValueError, match="Noise recording 1 is empty"):
        streams.KeywordStream(words, [np.ones(100), np.zeros(0)])
    with pytest.raises(ValueError, match=r"snr_db must be a finite number.*nan"):
        streams.KeywordStream(words, _noise(), snr_db=float("nan"))
    with pytest.raises(
        ValueError, match="expects 8000 Hz audio; the dataset is at 16000 Hz"
    ):
        streams.KeywordStream(words, _noise(), features=features.MFCC(8000, 240, 160))


def test_high_snr_lowers_the_noise_instead_of_clipping_the_speech():
    def build(snr):
        return streams.KeywordStream(
            _tone_words(),
            _noise(),
            num_segments=8,
            snr_db=snr,
            seed=2,
            keep_waveform=True,
        ).build()

    def levels(stream):
        hop = len(stream.waveform) // len(stream)
        inside = np.zeros(len(stream.waveform), bool)
        for start, end, _ in stream.segments:
            inside[start * hop : end * hop] = True
        gaps = stream.waveform[~inside]
        return np.sqrt(np.mean(gaps**2)), stream.waveform[inside]

    loud, clean = build(20.0), build(40.0)
    np.testing.assert_array_equal(loud.segments, clean.segments)
    noise_20, speech_20 = levels(loud)
    noise_40, speech_40 = levels(clean)
    # Above SPEECH_CEILING_DB (20 dB) the speech keeps its 20 dB level...
    assert streams.keyword_stream.SPEECH_CEILING_DB == 20.0
    np.testing.assert_allclose(
        np.sqrt(np.mean(speech_40**2)), np.sqrt(np.mean(speech_20**2)), rtol=0.02
    )
    assert np.abs(clean.waveform).max() < 1.0
    # ... and the noise, between utterances too, is 20 dB lower.
    np.testing.assert_allclose(noise_20, 0.01, rtol=0.05)
    np.testing.assert_allclose(noise_40, 0.001, rtol=0.05)
