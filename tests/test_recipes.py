"""The recipe: family registry, scoring rules, calibration, training callback, spotter folders, CLI."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_resetfree import Streamer, datasets, layers, recipes, streams
from keras_resetfree.streams import Augmentation, Stream


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("family", recipes.FAMILIES)
def test_build_model_every_family_size_depth_projection(family):
    small = recipes.build_model(family, 13, 12, size="tiny")
    deep = recipes.build_model(family, 13, 12, size="tiny", depth=2, projection=8)
    x = np.random.default_rng(0).normal(size=(2, 7, 13)).astype("float32")
    for model in (small, deep):
        assert tuple(model(x).shape) == (2, 7, 12)
    assert deep.count_params() > small.count_params() - 13 * 32 * 4
    assert recipes.units_for(family, "base") == (128 if family == "spiking" else 64)
    assert recipes.units_for(family, "medium") == (160 if family == "spiking" else 80)
    normalized = recipes.build_model(
        family, 13, 3, size=8, normalization=x.reshape(-1, 13)
    )
    assert isinstance(normalized.layers[1], keras.layers.Normalization)


def test_spiking_family_runs_on_frame_scale_time_constants():
    """The recipe's spiking model: plain LIF neurons whose membrane and readout start at
    a few frames, not the layers' millisecond defaults (20, a 0.4-s smear on 20-ms frames)."""
    keras.utils.set_random_seed(0)
    model = recipes.build_model("spiking", 13, 12, size=64)
    spiking = next(x for x in model.layers if isinstance(x, layers.SpikingRNN))
    readout = next(x for x in model.layers if isinstance(x, layers.LeakyReadout))
    assert not spiking.adaptive
    mean, std = recipes.families.SPIKING_TIME_CONSTANT
    for tau in (_numpy(spiking.cell.tau_m), _numpy(readout.cell.tau)):
        assert abs(tau.mean() - mean) < 4 * std / np.sqrt(tau.size)
        assert tau.max() < mean + 6 * std < 10.0
    default = layers.SpikingRNN(64)
    default.build((None, None, 13))
    assert _numpy(default.cell.tau_m).mean() > 10.0  # the layer's own default is slower


def test_build_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown family 'rnn'"):
        recipes.build_model("rnn", 13, 3)
    with pytest.raises(ValueError, match="Unknown size 'huge'"):
        recipes.build_model("gru", 13, 3, size="huge")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        recipes.build_model("gru", 13, 3, depth=0)
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\)"):
        recipes.build_model("gru", 13, 3, dropout=1.0)
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\)"):
        recipes.RecipeConfig(dropout=-0.1)
    for bad in ((8, 1), (0, 3), 5, ("a", 3), (8, 3, 0), (8, 3, 2, 1)):
        with pytest.raises(ValueError, match="front_end must be None or"):
            recipes.build_model("gru", 13, 3, front_end=bad)
    with pytest.raises(ValueError, match="front_end must be None or"):
        recipes.RecipeConfig(front_end=[16])


def test_front_end_is_a_streaming_causal_convolution():
    model = recipes.build_model("gru", 13, 3, size=8, front_end=(6, 3))
    front = model.get_layer("front_end")
    assert (front.cell.filters, front.cell.kernel_size) == (6, 3)
    x = np.random.default_rng(0).normal(size=(1, 40, 13)).astype("float32")
    np.testing.assert_allclose(
        Streamer(model).run(x, chunk_size=1), _numpy(model(x)), rtol=1e-4, atol=1e-5
    )
    assert recipes.RecipeConfig(front_end=(6, 3)).front_end == [6, 3]
    # Stacked: each output of the second layer sees 2 * (3 - 1) + 1 = 5 frames.
    keras.utils.set_random_seed(0)
    model = recipes.build_model("gru", 13, 3, size=8, front_end=(6, 3, 2))
    second = model.get_layer("front_end_2")
    assert (second.cell.filters, second.cell.kernel_size) == (6, 3)
    assert model.get_layer("front_end").output.shape[-1] == 6
    x = np.random.default_rng(1).normal(size=(1, 40, 13)).astype("float32")
    np.testing.assert_allclose(
        Streamer(model).run(x, chunk_size=1), _numpy(model(x)), rtol=1e-4, atol=1e-5
    )
    head = keras.Model(model.input, second.output)
    changed = x.copy()
    changed[0, 20] += 1.0
    moved = np.abs(_numpy(head(changed)) - _numpy(head(x))).max(-1)[0]
    assert moved[:20].max() == 0 and moved[25:].max() == 0 and moved[20] > 0
    assert recipes.RecipeConfig(front_end=[6, 3, 2]).front_end == [6, 3, 2]


def test_dropout_trains_only_and_streams():
    model = recipes.build_model("gru", 13, 3, size=8, depth=2, dropout=0.5)
    dropouts = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)
    ]
    assert len(dropouts) == 2
    x = np.random.default_rng(0).normal(size=(1, 40, 13)).astype("float32")
    inference = _numpy(model(x))
    assert not np.allclose(_numpy(model(x, training=True)), inference)
    # The Streamer runs it frame by frame as the identity: the same logits.
    np.testing.assert_allclose(
        Streamer(model).run(x, chunk_size=7), inference, rtol=1e-4, atol=1e-5
    )


def _stream(labels_per_segment, noise_classes=(), frame_rate=50.0, length=20, gap=30):
    """A stream of segments `length` frames long with `gap` noise frames before each."""
    segments, position = [], 0
    for label in labels_per_segment:
        position += gap
        segments.append((position, position + length, label))
        position += length
    total = position + gap
    labels = np.full(total, -1, "int32")
    mask = np.zeros(total, "float32")
    for a, b, c in segments:
        mask[a:b] = 1
        if c not in noise_classes:
            labels[a:b] = c
    return Stream(
        np.zeros((total, 2), "float32"),
        labels,
        mask,
        np.asarray(segments, "int64"),
        frame_rate,
        ["a", "b", "_unknown_", "_silence_"],
        noise_classes=tuple(noise_classes),
    )


def _tones(frequencies, label_names, speakers, rate=16000):
    """A dataset of one 0.5 s sine clip per label, at the given frequencies."""
    t = np.arange(rate // 2) / rate
    waves = [(0.5 * np.sin(2 * np.pi * f * t)).astype("float32") for f in frequencies]
    labels = np.arange(len(waves))
    return datasets.AudioDataset(
        waves, labels, label_names, speakers, [""] * len(waves), rate
    )


def _probs_for(stream, predicted, peak=0.9):
    """Uniform posteriors, and `peak` on `predicted[i]` over segment i (None: stay uniform)."""
    probs = np.full((len(stream), 4), 0.25)
    for (a, b, _), c in zip(stream.segments, predicted):
        if c is not None:
            probs[a:b] = (1 - peak) / 3
            probs[a:b, c] = peak
    return probs


def test_scoring_rules_segment_accuracy_silence_and_detection():
    stream = _stream([0, 1, 2, 3, 0], noise_classes=(3,))
    # Right on a, b, unknown and silence (stays uniform); wrong on the last a.
    probs = _probs_for(stream, [0, 1, 2, None, 1])
    predicted = recipes.segment_predictions(probs, stream)
    assert predicted.tolist() == [0, 1, 2, 3, 1]
    scores = recipes.score(probs, stream, recipes.Detector(0.5, 1, 30))
    assert scores["segment_accuracy"] == pytest.approx(4 / 5)
    # acc_p leaves the silence segment out: 3 of 4.
    assert scores["acc_p"] == pytest.approx(3 / 4)
    # Keywords: segments 0, 1 and 4 (not _unknown_ or _silence_); the last is
    # detected as the wrong keyword: one miss and one false alarm.
    assert scores["hit_rate"] == pytest.approx(2 / 3)
    hours = len(stream) / 50.0 / 3600
    assert scores["false_alarms_per_hour"] == pytest.approx(1 / hours)
    # _unknown_ is never reported: its confident segment is no false alarm.
    assert recipes.ignored_classes(stream.label_names) == (2, 3)


def test_false_alarm_sources_and_keyword_peaks():
    stream = _stream([0, 1, 2, 3, 0, 1], noise_classes=(3,))
    # Right, another keyword, a keyword on an unknown word and on a silence
    # clip, right but less sure, and nothing on the last keyword.
    probs = _probs_for(stream, [0, 0, 1, 0, 0, None])
    a, b, _ = stream.segments[4]
    probs[a:b] = [0.6, 0.2, 0.1, 0.1]
    probs[b + 27 : b + 29] = [0.05, 0.9, 0.025, 0.025]  # in the noise before the last
    detector = recipes.Detector(0.5, 1, 30)
    counts = recipes.false_alarm_sources(probs, stream, detector)
    assert counts == {
        "another keyword": 1,
        "an unknown word": 1,
        "a silence clip": 1,
        "noise": 1,
    }
    found = recipes.scoring.detections(probs, stream, detector)
    assert (
        found.false_alarms == sum(counts.values()) == len(found.false_alarm_detections)
    )
    # Keywords: segments 0, 1, 4 and 5, each over itself and 25 frames after.
    peaks = recipes.keyword_peaks(probs, stream, smoothing=1)
    np.testing.assert_allclose(peaks, [0.9, 0.25, 0.6, 0.25])
    # Smoothed over 40 frames, the 20-frame segments' peaks are halved towards the gap's.
    smoothed = recipes.keyword_peaks(probs, stream, smoothing=40)
    assert smoothed[0] == pytest.approx((20 * 0.9 + 20 * 0.25) / 40)


def test_tradeoff_frr_at_and_calibration_pick_the_best_threshold():
    stream = _stream([0, 1, 0, 1, 2, 2], frame_rate=50.0)
    probs = _probs_for(stream, [0, 1, 0, None, 2, 2], peak=0.8)
    # A false alarm: a confident 'b' in the noise before the last segment.
    a = stream.segments[-1, 0] - 20
    probs[a : a + 10] = [0.02, 0.96, 0.01, 0.01]
    curve = recipes.tradeoff(probs, stream, smoothing=1, refractory=10)
    thresholds, frr, fa = curve
    low, high = np.searchsorted(thresholds, 0.7), np.searchsorted(thresholds, 0.9)
    assert (
        frr[low] == pytest.approx(1 / 4) and fa[low] > 0
    )  # 3 of 4 keywords, 1 false alarm
    assert frr[high] == 1.0 and fa[high] > 0  # only the false alarm passes 0.9
    assert recipes.frr_at(curve, 0.0) == 1.0
    assert recipes.frr_at(curve, fa[low]) == pytest.approx(1 / 4)
    detector = recipes.calibrate(probs, stream, 0.0, smoothings=(1,), refractory=10)
    # No threshold keeps the keywords and drops the 0.96 false alarm.
    assert detector.threshold > 0.96
    generous = recipes.calibrate(
        probs, stream, fa[low], smoothings=(1, 3), refractory=10
    )
    assert generous.threshold < 0.8
    with pytest.raises(ValueError, match="target_false_alarms_per_hour"):
        recipes.calibrate(probs, stream, float("nan"))


def test_calibration_on_several_conditions_keeps_the_rate_on_each():
    stream = _stream([0, 1, 0, 1], frame_rate=50.0)
    noisy = _probs_for(stream, [0, 1, 0, 1], peak=0.8)
    quiet = _probs_for(stream, [0, 1, 0, 1], peak=0.95)
    # In the quiet room a confident 'b' fires in the noise before the first word.
    quiet[0:4] = [0.05, 0.9, 0.03, 0.02]
    settings = dict(smoothings=(1,), refractory=25)
    assert recipes.calibrate(noisy, stream, 0.0, **settings).threshold < 0.8
    assert 0.9 < recipes.calibrate(quiet, stream, 0.0, **settings).threshold < 0.95
    # The quiet room's false alarm rules: above 0.9, every noisy keyword is lost.
    both = recipes.calibrate([noisy, quiet], [stream, stream], 0.0, **settings)
    assert 0.9 < both.threshold < 0.95
    # With one false alarm allowed in it, the threshold that keeps all 8 keywords.
    one = recipes.tradeoff(quiet, stream, smoothing=1, refractory=25)[2].max()
    generous = recipes.calibrate([noisy, quiet], [stream, stream], one, **settings)
    assert generous.threshold < 0.8
    with pytest.raises(ValueError, match="one probs array per stream: got 1 for 2"):
        recipes.calibrate([noisy], [stream, stream])
    assert recipes.calibration_ranges((0, 20)) == [(0.0, 20.0), (20.0, 40.0)]
    assert recipes.calibration_ranges((5, 40)) == [(5.0, 40.0)]
    assert recipes.calibration_ranges((0, 20), [[0, 10]]) == [(0.0, 10.0)]
    for bad in ([], [[0, 20], [40, 20]], [[0]], "0-40"):
        with pytest.raises(ValueError, match="calibration_snr_db must be"):
            recipes.RecipeConfig(calibration_snr_db=bad)


def test_agreement_on_sure_frames_and_shared_detections():
    stream = _stream([0, 1, 0, 1], frame_rate=50.0)
    reference = np.log(_probs_for(stream, [0, 1, 0, 1], peak=0.8))
    got = reference.copy()
    # On the third word the other run swaps the top two classes on the first
    # 5 frames, where the reference is unsure (0.4 against 0.35).
    a = stream.segments[2, 0]
    reference[a : a + 5] = np.log([0.4, 0.35, 0.15, 0.1])
    got[a : a + 5] = np.log([0.35, 0.4, 0.15, 0.1])
    informative = np.sum(stream.labels != stream.noise_label)
    assert recipes.scoring.agreement(reference, got, stream) == pytest.approx(
        1 - 5 / informative
    )
    assert recipes.scoring.agreement(reference, got, stream, min_probability=0.5) == 1
    assert np.isnan(recipes.scoring.agreement(reference, got, stream, 0.99))
    with pytest.raises(ValueError, match="same shape"):
        recipes.scoring.agreement(reference, got[:-1], stream)
    with pytest.raises(ValueError, match="min_probability must be in"):
        recipes.scoring.agreement(reference, got, stream, min_probability=1.0)
    # Decisions: the other run fires word 1 two frames late (shared), misses
    # word 2 and fires a 'b' in the noise (its own).
    detector = recipes.Detector(threshold=0.7, smoothing=1, refractory=25)
    probs = recipes.probabilities(reference)
    other = probs.copy()
    first, second = stream.segments[0, 0], stream.segments[1, 0]
    other[first : first + 2] = 0.25
    other[second:] = 0.25
    other[5:8] = [0.05, 0.85, 0.05, 0.05]
    shared = recipes.scoring.shared_detections(probs, other, stream, detector)
    assert (shared.reference, shared.got, shared.shared) == (4, 2, 1)
    assert shared.share == pytest.approx(1 / 5)
    late = recipes.scoring.shared_detections(
        probs, other, stream, detector, tolerance=1
    )
    assert late.shared == 0
    same = recipes.scoring.shared_detections(probs, probs, stream, detector)
    assert same.share == 1.0 and same.shared == 4
    with pytest.raises(ValueError, match="same shape"):
        recipes.scoring.shared_detections(probs, other[:-1], stream, detector)
    with pytest.raises(ValueError, match="tolerance must be >= 0 frames, got -1"):
        recipes.scoring.shared_detections(probs, other, stream, detector, tolerance=-1)


def test_augmentation_is_seeded_and_changes_what_it_says():
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    wave = np.sin(np.linspace(0, 200, 16000)).astype("float32")
    augmentation = Augmentation(time_shift=0.1, speed=(0.9, 1.1), gain_db=(-6, 6))
    a = augmentation.utterance(wave, 16000, rng())
    b = augmentation.utterance(wave, 16000, rng())
    np.testing.assert_array_equal(a, b)
    assert 16000 / 1.1 - 2 <= len(a) <= 16000 / 0.9 + 2
    none = Augmentation.none()
    np.testing.assert_array_equal(none.utterance(wave, 16000, rng()), wave)
    assert none.block_gain(rng()) == 1.0
    x = np.ones((4, 50, 13), "float32")
    masked = Augmentation(
        time_masks=1, time_mask_frames=10, frequency_masks=1, frequency_mask_bins=3
    )
    out = masked.mask_features(x, np.zeros(13), np.random.default_rng(0))
    assert out.shape == x.shape and (out == 0).any() and (x == 1).all()
    assert (out == 0).sum() <= 4 * (10 * 13 + 3 * 50)
    with pytest.raises(ValueError, match="speed must be"):
        Augmentation(speed=(1.1, 0.9))
    with pytest.raises(ValueError, match="time_masks must be an integer"):
        Augmentation(time_masks=-1)


def test_stream_windows_redraw_a_fresh_stream_every_epoch():
    def source(epoch):
        return streams.template_stream(20, seed=epoch)

    data = streams.StreamWindows(source, 40, batch_size=4, augmentation=Augmentation())
    first = data[0][0].copy()
    count = len(data)
    data.on_epoch_end()
    assert len(data) == count
    assert not np.array_equal(first, data[0][0])


def test_stream_validation_logs_scores_keeps_best_and_stops():
    keras.utils.set_random_seed(0)
    stream = _stream([0, 1, 0, 1, 2], length=10, gap=10)
    stream.features = (
        np.random.default_rng(0).normal(size=(len(stream), 2)).astype("float32")
    )
    model = recipes.build_model("gru", 2, 4, size=4)
    model.compile(optimizer="sgd", loss="mse")
    callback = recipes.StreamValidation(stream, patience=2, pieces=2)
    callback.set_model(model)
    callback.on_train_begin()
    logs = {}
    callback.on_epoch_end(0, logs)
    assert {"val_acc_p", "val_segment_accuracy", "val_false_alarms_per_hour"} <= set(
        logs
    )
    best = model.get_weights()
    # Two epochs without improvement (weights scrambled, the score cannot rise
    # above a perfect one unless it was already best): stop and restore.
    callback.best = 2.0
    for epoch in (1, 2):
        model.set_weights([w + 1.0 for w in best])
        callback.on_epoch_end(epoch, {})
    assert model.stop_training
    callback.best_weights = best
    callback.on_train_end()
    for got, want in zip(model.get_weights(), best):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="monitor 'val_nothing'"):
        other = recipes.StreamValidation(stream, monitor="val_nothing")
        other.set_model(model)
        other.on_train_begin()
        other.on_epoch_end(0, {})
    # Fine-tuning: the starting weights are scored and kept unless an epoch beats them.
    start = [np.zeros_like(w) for w in best]  # scores 0.4 here, the random weights 0.2
    model.set_weights(start)
    keeper = recipes.StreamValidation(stream, patience=5, pieces=2, score_start=True)
    keeper.set_model(model)
    keeper.on_train_begin()
    start_score = keeper.best
    assert np.isfinite(start_score)
    logs = {}
    model.set_weights(best)
    keeper.on_epoch_end(0, logs)
    assert logs["val_segment_accuracy"] <= start_score + keeper.min_delta
    keeper.on_train_end()
    for got, want in zip(model.get_weights(), start):
        np.testing.assert_array_equal(got, want)


def _one_word_task(**settings):
    """One tone 'word' in white noise, the same in every split."""
    rate = 16000
    wave = (0.5 * np.sin(np.arange(rate // 2) / 5.0)).astype("float32")
    words = datasets.AudioDataset([wave], np.array([0]), ["word"], ["s"], [""], rate)
    hiss = [np.random.default_rng(0).normal(size=rate * 20).astype("float32")]
    return recipes.KeywordTask(
        {"train": words, "validation": words, "test": words},
        recipes.split_noise(hiss),
        ["word"],
        augmentation=Augmentation.none(),
        **settings,
    )


def _gap_energy(stream):
    # The first MFCC coefficient follows the log energy of a frame.
    return stream.features[stream.mask == 0, 0].mean()


def test_task_noise_rms_sets_the_noise_level():
    def gaps(noise_rms):
        return _gap_energy(
            _one_word_task(noise_rms=noise_rms).evaluation_stream("test", 3)
        )

    # 20 dB less noise: lower log energy in the gaps between utterances.
    assert gaps(0.001) < gaps(0.01) - 2.0
    with pytest.raises(ValueError, match="noise_rms must be > 0 and finite, got 0.0"):
        gaps(0.0)


def test_train_snr_db_changes_the_training_streams_only():
    usual, clean = _one_word_task(), _one_word_task(train_snr_db=(40.0, 40.0))
    # Training at 40 dB: the speech keeps its level, the noise between words drops.
    assert (
        _gap_energy(clean.train_stream(0, 3))
        < _gap_energy(usual.train_stream(0, 3)) - 2.0
    )
    # Evaluation streams, of the training speakers too, keep the task's snr_db.
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            clean.evaluation_stream(split, 3).features,
            usual.evaluation_stream(split, 3).features,
        )
    assert recipes.RecipeConfig(train_snr_db=[0, 40]).train_snr_db == [0, 40]
    for bad in ([40, 0], [0], [0, float("nan")], "0-40"):
        with pytest.raises(
            ValueError, match="train_snr_db must be \\[min, max\\] in dB"
        ):
            recipes.RecipeConfig(train_snr_db=bad)


def test_unknown_share_changes_the_training_streams_only():
    words = _tones((300, 900, 2000), ["word", "other", "_unknown_"], ["s"] * 3)

    def task(**settings):
        return recipes.KeywordTask(
            {"train": words, "validation": words, "test": words},
            recipes.split_noise(None),
            ["word", "other", "_unknown_"],
            augmentation=Augmentation.none(),
            **settings,
        )

    usual, more = task(), task(unknown_share=0.7)

    def unknown_share(stream):
        return np.mean(np.asarray(stream.segments)[:, 2] == 2)

    assert abs(unknown_share(usual.train_stream(0, 200)) - 1 / 3) < 0.1
    assert abs(unknown_share(more.train_stream(0, 200)) - 0.7) < 0.1
    np.testing.assert_array_equal(
        more.evaluation_stream("test", 4).features,
        usual.evaluation_stream("test", 4).features,
    )
    with pytest.raises(ValueError, match="no _unknown_ class"):
        _one_word_task(unknown_share=0.5).train_stream(0, 2)
    assert recipes.RecipeConfig(unknown_share=0.25).unknown_share == 0.25
    for bad in (1.0, -0.1, "0.25", True, float("nan")):
        with pytest.raises(ValueError, match="unknown_share must be in \\[0, 1\\)"):
            recipes.RecipeConfig(unknown_share=bad)
    with pytest.raises(ValueError, match="unknown_share needs the _unknown_ label"):
        recipes.RecipeConfig(unknown_share=0.25, unknown=False)


def test_mfcc_coefficients_set_the_features_of_every_stream():
    config = recipes.RecipeConfig(mfcc_coefficients=20)
    assert config.make_features(16000).num_coefficients == 20
    assert recipes.RecipeConfig().make_features(16000).num_coefficients == 13
    for bad in (0, 2.5, "13"):
        with pytest.raises(ValueError, match="mfcc_coefficients must be an integer"):
            recipes.RecipeConfig(mfcc_coefficients=bad)
    with pytest.raises(ValueError, match="mfcc_coefficients must be <= 40"):
        recipes.RecipeConfig(mfcc_coefficients=41)


def _two_tone_task():
    """A tiny two-word task (one tone per word, every split the same), no augmentation."""
    words = _tones((300, 900), ["low", "high"], ["s", "s"])
    return recipes.KeywordTask(
        {"train": words, "validation": words, "test": words},
        recipes.split_noise(None),
        ["low", "high"],
        segments_per_epoch=6,
        evaluation_segments=4,
        augmentation=Augmentation.none(),
    )


def test_fit_trains_with_the_peak_term():
    task = _two_tone_task()
    model = recipes.build_model("gru", 13, 2, size=4)
    history, _ = recipes.fit(
        model, task, max_epochs=1, window=40, batch_size=2, verbose=0, peak_weight=0.5
    )
    assert model.loss.peak_weight == 0.5
    assert np.isfinite(history.history["loss"]).all()


def test_fit_with_weight_average_keeps_the_averaged_weights():
    task = _two_tone_task()

    class Seen(keras.callbacks.Callback):
        # Runs after SwapEMAWeights and StreamValidation: sees what validation scored.
        def __init__(self):
            super().__init__()
            self.scored = []

        def on_epoch_end(self, epoch, logs=None):
            self.scored.append(self.model.get_weights())

    def run(weight_average):
        keras.utils.set_random_seed(0)
        model = recipes.build_model("gru", 13, 2, size=4)
        seen = Seen()
        recipes.fit(
            model, task, max_epochs=2, window=40, batch_size=2, verbose=0,
            weight_average=weight_average, callbacks=[seen],
        )  # fmt: skip
        return model, seen.scored

    plain, plain_scored = run(0.0)
    model, scored = run(0.5)
    assert model.optimizer.use_ema and model.optimizer.ema_momentum == 0.5
    assert not plain.optimizer.use_ema
    # The same seed trains the same raw weights; validation scored their
    # average, not them (epoch 0: the first steps moved the weights).
    assert any(not np.allclose(a, b) for a, b in zip(scored[0], plain_scored[0]))
    # The weights fit returns are those of a scored epoch.
    final = model.get_weights()
    assert any(all(np.allclose(a, b) for a, b in zip(final, e)) for e in scored)
    with pytest.raises(ValueError, match="weight_average must be in"):
        recipes.fit(model, task, max_epochs=1, weight_average=1.0)
    with pytest.raises(ValueError, match="weight_average must be in"):
        recipes.RecipeConfig(weight_average=-0.1)


def test_pieces_match_separate_streamers():
    model = recipes.build_model("gru", 3, 2, size=4)
    features = np.random.default_rng(1).normal(size=(230, 3)).astype("float32")
    together = recipes.stream_logits(model, features, chunk=50, pieces=2)
    half = 150  # 230 frames in 2 pieces of whole 50-frame chunks: 150 + 80
    alone = [
        recipes.stream_logits(model, features[:half], chunk=50),
        recipes.stream_logits(model, features[half:], chunk=50),
    ]
    np.testing.assert_allclose(together, np.concatenate(alone), atol=1e-5)


def test_config_file_and_spotter_folder_round_trip(tmp_path):
    config_file = tmp_path / "kws.toml"
    config_file.write_text(
        'words = ["yes", "no"]\nfamily = "lstm"\nsize = "tiny"\n[augmentation]\nspeed = [0.95, 1.05]\n'
    )
    config = recipes.load_config(config_file, seed=3, family=None)
    assert (config.words, config.family, config.seed) == (["yes", "no"], "lstm", 3)
    assert config.train_snr_db is None
    assert config.unknown_share is None
    assert config.make_augmentation().speed == (0.95, 1.05)
    (tmp_path / "bad.toml").write_text("famly = 'gru'\n")
    with pytest.raises(ValueError, match=r"unknown settings \['famly'\]"):
        recipes.load_config(tmp_path / "bad.toml")
    (tmp_path / "broken.toml").write_text("words = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        recipes.load_config(tmp_path / "broken.toml")
    with pytest.raises(ValueError, match="Unknown augmentation keys"):
        recipes.RecipeConfig(augmentation={"pitch": 2})
    with pytest.raises(ValueError, match="max_epochs must be an integer >= 1"):
        recipes.RecipeConfig(max_epochs=0)
    with pytest.raises(ValueError, match="mask must be one of .*'speech'"):
        recipes.RecipeConfig(mask="clean")
    with pytest.raises(ValueError, match="peak_weight must be a finite number >= 0"):
        recipes.RecipeConfig(peak_weight=-1.0)

    model = recipes.build_model("lstm", 13, 4, size=4, normalization=np.ones((10, 13)))
    spotter = recipes.Spotter(
        model,
        ["yes", "no", "_unknown_", "_silence_"],
        recipes.Detector(0.7, 3, 40),
        config,
        {"test_acc_p": 0.5},
    )
    folder = tmp_path / "spotter"
    spotter.save(folder)
    (folder / "stale").write_text("from an older model")
    spotter.save(folder)  # replaced whole, not merged
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "spotter.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    loaded = recipes.Spotter.load(folder)
    assert loaded.detector == recipes.Detector(0.7, 3, 40)
    assert loaded.ignore_classes == (2, 3) and loaded.config.family == "lstm"
    x = np.random.default_rng(0).normal(size=(1, 5, 13)).astype("float32")
    np.testing.assert_allclose(_numpy(loaded.model(x)), _numpy(model(x)), atol=1e-6)
    normalization, classifier = recipes.split_normalization(loaded.model)
    np.testing.assert_allclose(
        _numpy(classifier(normalization(x))), _numpy(model(x)), atol=1e-5
    )
    (folder / "spotter.json").write_text("{")
    with pytest.raises(ValueError, match="corrupt"):
        recipes.Spotter.load(folder)
    with pytest.raises(FileNotFoundError, match="not a spotter folder"):
        recipes.Spotter.load(tmp_path)


def test_the_documented_config_file_loads(tmp_path):
    doc = Path(__file__).resolve().parents[1] / "docs" / "keyword_spotting.md"
    block = doc.read_text().split("```toml\n")[1].split("```")[0]
    (tmp_path / "my_words.toml").write_text(block)
    config = recipes.load_config(tmp_path / "my_words.toml")
    assert config.words == ["marvin", "sheila"]
    assert config.size == "medium" and config.target_false_alarms_per_hour == 2.0
    assert config.make_augmentation().speed == (0.95, 1.05)


def test_keyword_stream_noise_classes_are_noise_frames_but_scored_segments():
    dataset = _tones((500, 900), ["word", "_silence_"], ["s1", "s2"])
    stream = streams.KeywordStream(
        dataset, num_segments=12, noise_classes=(1,), seed=0
    ).build()
    silence = stream.segments[stream.segments[:, 2] == 1]
    assert len(silence) and stream.noise_classes == (1,)
    for a, b, _ in silence:
        assert (stream.labels[a:b] == -1).all()
    assert (stream.labels == 0).any()
    relabelled = stream.with_mask_threshold(0.5)
    for a, b, _ in silence:
        assert (relabelled.labels[a:b] == -1).all()
    silent = datasets.AudioDataset(
        [np.zeros(800, "float32")], np.array([0]), ["w"], ["s"], ["quiet.wav"], 16000
    )
    with pytest.raises(ValueError, match=r"quiet.wav.*silent"):
        streams.KeywordStream(silent, num_segments=1).build()


def _tone_folder(root, soundfile):
    """A tiny Speech Commands layout: two 'words' (tones), unknown, silence, noise; 30 speakers."""
    rate = 16000
    t = np.arange(int(0.6 * rate)) / rate
    rng = np.random.default_rng(0)
    for speaker in range(30):
        for word, freq in (("high", 1500.0), ("low", 300.0), ("_unknown_", 800.0)):
            wave = 0.4 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.normal()) * t)
            path = root / word / f"spk{speaker:03d}_nohash_0.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), wave.astype("float32"), rate)
        path = root / "_silence_" / f"spk{speaker:03d}_nohash_0.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(
            str(path), (0.01 * rng.normal(size=rate)).astype("float32"), rate
        )
    (root / "_background_noise_").mkdir()
    soundfile.write(
        str(root / "_background_noise_" / "white.wav"),
        (0.05 * rng.normal(size=20 * rate)).astype("float32"),
        rate,
    )


@pytest.mark.slow
def test_cli_train_evaluate_convert_sketch_on_your_own_keywords(tmp_path, capsys):
    soundfile = pytest.importorskip(
        "soundfile", reason="the audio extra is not installed"
    )
    from resetfree_cli import main

    data = tmp_path / "my_words"
    _tone_folder(data, soundfile)
    config = tmp_path / "my.toml"
    config.write_text(
        f'data = "{data}"\nwords = ["high", "low"]\nsize = 8\nsegments_per_epoch = 60\n'
        "evaluation_segments = 30\nmax_epochs = 2\npatience = 2\ncalibration_hours = 0.03\n"
        "train_snr_db = [0, 40]\nunknown_share = 0.3\nmfcc_coefficients = 8\n"
    )
    task = recipes.load_config(config).keyword_task()
    assert task.train_snr_db == (0.0, 40.0) and task.unknown_share == 0.3
    assert task.train_stream(0, 2).features.shape[1] == 8
    out = tmp_path / "spotter"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "segment accuracy" in printed and "false-reject rate at" in printed
    meta = json.loads((out / "spotter.json").read_text())
    assert meta["label_names"] == ["high", "low", "_unknown_", "_silence_"]
    assert meta["config"]["train_snr_db"] == [0, 40]
    assert meta["config"]["unknown_share"] == 0.3
    assert meta["config"]["mfcc_coefficients"] == 8
    assert recipes.Spotter.load(out).model.input_shape[-1] == 8
    assert meta["scores"]["epochs"] <= 2 and 0 < meta["detector"]["threshold"] <= 1
    assert meta["scores"]["calibration_hours"] >= 0.03
    assert (
        main(["calibrate", str(out), "--target-false-alarms", "50", "--hours", "0.03"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "detector for 50 false alarms per hour" in printed
    # By default the detector keeps the rate in noisy audio and in quiet rooms.
    assert "0.03 h of validation audio at each of 0-20 dB, 20-40 dB SNR" in printed
    meta = json.loads((out / "spotter.json").read_text())
    assert meta["config"]["target_false_alarms_per_hour"] == 50
    assert meta["scores"]["calibration_hours"] >= 2 * 0.03
    # A quiet deployment calibrates on its own range; the spotter keeps it.
    assert main(["calibrate", str(out), "--hours", "0.03", "--snr", "30", "40"]) == 0
    assert "at each of 30-40 dB SNR" in capsys.readouterr().out
    meta = json.loads((out / "spotter.json").read_text())
    assert meta["config"]["calibration_snr_db"] == [[30.0, 40.0]]
    report = tmp_path / "scores.json"
    assert (
        main(
            ["evaluate", str(out), "--json", str(report), "--false-alarm-hours", "0.02"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "false alarms per hour" in printed and "noise and unknown words only" in printed
    )
    assert "its false alarms fired on: another keyword" in printed
    written = json.loads(report.read_text())
    assert written["false_alarm_stream"]["hours"] >= 0.02
    assert set(written["false_alarm_sources"]) == set(
        recipes.scoring.FALSE_ALARM_SOURCES
    )
    assert all(0.0 <= p <= 1.0 for p in written["keyword_peaks"])
    assert "keywords whose own word's posterior reaches the threshold" in printed
    if keras.backend.backend() != "tensorflow":
        return  # conversion runs on TensorFlow (test_export covers the subprocess path)
    pytest.importorskip("tflite_micro", reason="the tflm extra is not installed")
    sketch = tmp_path / "my_spotter"
    assert main(["sketch", str(out), "--out", str(sketch)]) == 0
    printed = capsys.readouterr().out
    assert "where float is at least 50 % sure" in printed
    assert "the calibrated detector's detections in common with float" in printed
    files = {p.name for p in sketch.iterdir()}
    assert {
        "my_spotter.ino",
        "detector.h",
        "model_data.cpp",
        "model_settings.h",
    } <= files
    settings = (sketch / "model_settings.h").read_text()
    threshold = float(np.float32(meta["detector"]["threshold"]))
    assert f"kDetectionThreshold = {threshold!r}f;" in settings
    assert "kIgnoredClasses[kNumClasses] = {false, false, true, true}" in settings
    # The board computes the MFCCs the spotter was trained on.
    assert "kNumCoefficients = 8;" in (sketch / "feature_config.h").read_text()
    assert main(["convert", str(out), "--out", str(tmp_path / "m.tflite")]) == 0
    assert (tmp_path / "m.normalization.json").is_file()
    capsys.readouterr()
    qat = tmp_path / "qat.tflite"
    assert main(["convert", str(out), "--out", str(qat), "--qat", "1"]) == 0
    assert "fine-tuning 1 epochs on the int8 grids" in capsys.readouterr().out
    assert qat.read_bytes()[4:8] == b"TFL3"


def test_cli_errors_name_the_option(tmp_path, capsys):
    from resetfree_cli import main

    with pytest.raises(SystemExit, match="model .*: .*not a spotter folder"):
        main(["evaluate", str(tmp_path)])
    (tmp_path / "bad.toml").write_text("famly = 1\n")
    with pytest.raises(SystemExit, match="--config .*unknown settings"):
        main(
            [
                "train",
                "--config",
                str(tmp_path / "bad.toml"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
    with pytest.raises(SystemExit):
        main(["train", "--size", "huge", "--out", str(tmp_path / "x")])
    assert "a size name" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="front_end must be None or"):
        main(["train", "--front-end", "32", "1", "--out", str(tmp_path / "x")])
    for hours in ("0", "nan", "-1", "two"):
        with pytest.raises(SystemExit):
            main(["demo", "--calibration-hours", hours])
        assert "--calibration-hours" in capsys.readouterr().err
    for snr in (["20", "10"], ["0", "nan"]):
        with pytest.raises(SystemExit, match="--snr takes MIN MAX in dB, MIN <= MAX"):
            main(["calibrate", str(tmp_path), "--snr", "0", "20", "--snr", *snr])


def test_silence_threshold_is_calibrated_on_validation():
    stream = _stream([0, 1, 3, 0, 3], noise_classes=(3,))
    # Right but unsure (0.4 against 0.2 for the others), and uniform on silence.
    probs = _probs_for(stream, [0, 1, None, 0, None], peak=0.4)
    by_default = recipes.score(probs, stream, curve=False)
    assert by_default["segment_accuracy"] == pytest.approx(2 / 5)  # all called silence
    detector = recipes.calibrate(probs, stream, 5.0)
    assert 0.25 < detector.silence_threshold <= 0.4
    calibrated = recipes.score(probs, stream, detector, curve=False)
    assert calibrated["segment_accuracy"] == 1.0
    # Calibrated on several conditions, the silence threshold is the first one's.
    loud = _probs_for(stream, [0, 1, 0, 0, 0], peak=0.45)
    loud[stream.segments[[0, 1, 3], 0][:, None] + np.arange(20)] = _probs_for(
        stream, [0, 1, None, 0, None], peak=0.9
    )[stream.segments[[0, 1, 3], 0][:, None] + np.arange(20)]
    assert 0.45 < recipes.calibrate(loud, stream, 5.0).silence_threshold <= 0.6
    both = recipes.calibrate([probs, loud], [stream, stream], 5.0)
    assert both.silence_threshold == detector.silence_threshold
    assert (
        recipes.calibrate([loud, probs], [stream, stream], 5.0).silence_threshold > 0.45
    )


def test_a_cut_short_keras_file_is_named_as_such(tmp_path):
    model = recipes.build_model("gru", 3, 2, size=4)
    path = tmp_path / "model.keras"
    model.save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(
        ValueError, match=r"model\.keras is not a complete \.keras model"
    ):
        recipes.spotter.load_keras_model(path)
    with pytest.raises(FileNotFoundError, match="No model file"):
        recipes.spotter.load_keras_model(tmp_path / "missing.keras")


def test_bad_task_and_calibration_arguments(tmp_path):
    rate = 16000
    wave = (0.5 * np.sin(np.arange(rate // 2) / 5.0)).astype("float32")
    words = datasets.AudioDataset([wave], np.array([0]), ["word"], ["s"], [""], rate)
    task = recipes.KeywordTask(
        {"train": words, "validation": words, "test": words},
        recipes.split_noise(None),
        ["word"],
    )
    with pytest.raises(
        ValueError, match="split must be 'validation', 'test' or 'train', got 'dev'"
    ):
        task.evaluation_stream("dev")
    # The training speakers as an evaluation stream: fixed, not a fresh epoch.
    fitted = task.evaluation_stream("train", 3)
    assert len(fitted.segments) == 3
    np.testing.assert_array_equal(
        fitted.features, task.evaluation_stream("train", 3).features
    )
    with pytest.raises(ValueError, match="no _unknown_ or _silence_ class"):
        task.false_alarm_stream()
    with pytest.raises(ValueError, match="calibration_hours must be > 0"):
        recipes.RecipeConfig(calibration_hours=0.0)
    from resetfree_cli import main

    model = recipes.build_model("gru", 13, 2, size=4)
    spotter = recipes.Spotter(
        model, ["word", "_silence_"], recipes.Detector(), recipes.RecipeConfig()
    )
    spotter.save(tmp_path / "s")
    with pytest.raises(SystemExit, match="--hours must be > 0"):
        main(["calibrate", str(tmp_path / "s"), "--hours", "0"])
    with pytest.raises(SystemExit, match="--target-false-alarms must be >= 0"):
        main(["calibrate", str(tmp_path / "s"), "--target-false-alarms", "-1"])


def test_split_normalization_refuses_a_model_that_is_no_chain():
    inputs = keras.Input((None, 3))
    normalization = keras.layers.Normalization()
    normalization.adapt(np.random.default_rng(0).normal(size=(20, 3)))
    x = normalization(inputs)
    branch = keras.layers.Add()(
        [recipes.build_model("gru", 3, 4, size=4)(x), keras.layers.Dense(4)(x)]
    )
    with pytest.raises(
        ValueError, match="not a chain of layers after its Normalization"
    ):
        recipes.split_normalization(keras.Model(inputs, branch))
