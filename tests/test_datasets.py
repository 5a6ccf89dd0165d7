import warnings

import numpy as np
import pytest

from keras_resetfree import datasets

soundfile = pytest.importorskip(
    "soundfile", reason="the audio extra (soundfile) is not installed"
)


def _write(path, data, rate=16000, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


def _tone(seconds=0.5, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype("float32")


def test_load_audio_decodes_and_resamples(tmp_path):
    path = _write(tmp_path / "a.wav", _tone(rate=8000), rate=8000)
    wave, rate = datasets.load_audio(path)
    assert rate == 8000 and wave.dtype == np.float32 and np.abs(wave).max() <= 1.0
    up, rate = datasets.load_audio(path, sample_rate=16000)
    assert rate == 16000 and abs(len(up) - 2 * len(wave)) <= 2
    # The tone survives resampling: same frequency peak.
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * 16000 / len(up) - 440.0) < 5.0
    with pytest.raises(datasets.AudioFileError, match="8000 Hz, expected 16000"):
        datasets.load_audio(path, sample_rate=16000, resample_to_rate=False)


def test_bad_files_raise_or_are_skipped_with_a_count(tmp_path):
    root = tmp_path / "words"
    _write(root / "yes" / "good.wav", _tone())
    (root / "yes" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    (root / "yes" / "empty.wav").write_bytes(b"")
    _write(root / "no" / "stereo.wav", np.stack([_tone(), _tone()], axis=1))
    good = _write(root / "no" / "good.wav", _tone(freq=880.0))
    truncated = root / "no" / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(
        datasets.AudioFileError, match=r"(corrupt|stereo|truncated)\.wav"
    ):
        datasets.load_wav_folder(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = datasets.load_wav_folder(root, on_error="skip")
    assert len(loaded) == 2 and loaded.label_names == ["no", "yes"]
    kinds = sorted(kind for _, kind, _ in loaded.skipped)
    assert kinds == ["corrupt", "corrupt", "corrupt", "multichannel"]
    assert any("Skipped 4 of 6 audio files" in str(w.message) for w in caught)
    with pytest.raises(FileNotFoundError):
        datasets.load_wav_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="on_error"):
        datasets.load_wav_folder(root, on_error="ignore")


def test_speech_commands_layout_and_speaker_split(tmp_path):
    root = tmp_path / "speech_commands"
    for word in ("yes", "no", "house"):
        for speaker in ("aaaa1111", "bbbb2222", "cccc3333", "dddd4444"):
            _write(root / word / f"{speaker}_nohash_0.wav", _tone(0.2))
    _write(root / "_silence_" / "s_nohash_0.wav", np.zeros(3200, "float32"))
    _write(root / "_background_noise_" / "white.wav", _tone(1.0))
    full = datasets.load_speech_commands(root, words=("yes", "no"))
    assert full.label_names == ["yes", "no", "_unknown_", "_silence_"]
    assert np.bincount(full.labels).tolist() == [4, 4, 4, 1]
    parts = [
        datasets.load_speech_commands(root, words=("yes", "no"), split=s)
        for s in ("train", "validation", "test")
    ]
    assert sum(len(p) for p in parts) == len(full)
    speakers = [set(p.speakers) for p in parts]
    assert not (
        speakers[0] & speakers[1]
        or speakers[0] & speakers[2]
        or speakers[1] & speakers[2]
    )
    assert datasets.speaker_partition("aaaa1111") == datasets.speaker_partition(
        "aaaa1111"
    )
    # The official lists win when present.
    (root / "validation_list.txt").write_text("yes/aaaa1111_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/bbbb2222_nohash_0.wav\n")
    validation = datasets.load_speech_commands(
        root, words=("yes", "no"), split="validation"
    )
    assert validation.paths == [str(root / "yes" / "aaaa1111_nohash_0.wav")]
    assert len(datasets.load_background_noise(root)) == 1
    with pytest.raises(FileNotFoundError, match=r"\['left'\]"):
        datasets.load_speech_commands(root, words=("yes", "left"))


def test_shared_speech_commands(shared_data):
    train = datasets.load_speech_commands(
        shared_data / "speech_commands", split="train"
    )
    test = datasets.load_speech_commands(shared_data / "speech_commands", split="test")
    assert len(train.label_names) == 12 and len(train) > len(test) > 0
    assert not set(train.speakers) & set(test.speakers)
    assert all(len(w) == 16000 for w in train.waveforms[:20])
    print(train.summary())


def test_shared_fsdd_splits(shared_data):
    test = datasets.load_fsdd(shared_data / "fsdd", split="test")
    assert len(test) == 250 and test.sample_rate == 8000
    by_speaker = datasets.load_fsdd(
        shared_data / "fsdd", split="test", by="speaker", test_speakers=("theo",)
    )
    assert set(by_speaker.speakers) == {"theo"} and len(by_speaker) == 500
    upsampled = datasets.load_fsdd(
        shared_data / "fsdd", split="test", sample_rate=16000
    )
    assert upsampled.sample_rate == 16000


def test_shared_images(shared_data):
    (x, y), (xt, yt) = datasets.load_fashion_mnist(shared_data / "fashion-mnist")
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    (x, y), _ = datasets.load_mnist(shared_data / "mnist")
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_read_idx_rejects_truncated(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3]))
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(path)


def test_synthesizer_is_deterministic_and_cached(tmp_path, capsys):
    pytest.importorskip(
        "espeakng_loader", reason="the audio extra (espeakng-loader) is not installed"
    )
    first = datasets.synthesize_keywords(
        ("yes", "stop"), 3, seed=5, cache_dir=tmp_path, verbose=2
    )
    assert "6/6" in capsys.readouterr().out  # the worker's progress, per utterance
    assert len(first) == 6 and first.label_names == ["yes", "stop"]
    assert first.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = datasets.synthesize_keywords(("yes", "stop"), 3, seed=5, cache_dir=tmp_path)
    for a, b in zip(first.waveforms, again.waveforms):
        np.testing.assert_array_equal(a, b)
    fresh = datasets.synthesize_keywords(
        ("yes", "stop"), 3, seed=5, cache_dir=tmp_path / "other"
    )
    for a, b in zip(first.waveforms, fresh.waveforms):
        np.testing.assert_array_equal(a, b)  # deterministic, not only cached
    for wave in first.waveforms:
        assert 0.15 < len(wave) / 16000 < 1.5  # a word, trimmed
        assert 0.25 < np.abs(wave).max() <= 0.9
    other_seed = datasets.synthesize_keywords(
        ("yes", "stop"), 3, seed=6, cache_dir=tmp_path
    )
    assert any(
        len(a) != len(b) or not np.array_equal(a, b)
        for a, b in zip(first.waveforms, other_seed.waveforms)
    )


def test_bad_loader_arguments(tmp_path):
    root = tmp_path / "speech_commands"
    _write(root / "yes" / "a1_nohash_0.wav", _tone(0.2))
    with pytest.raises(ValueError, match="split must be"):
        datasets.load_speech_commands(root, words=("yes",), split="dev")
    fsdd = tmp_path / "fsdd" / "recordings"
    _write(fsdd / "3_anna_7.wav", _tone(0.2, rate=8000), rate=8000)
    with pytest.raises(ValueError, match="by must be"):
        datasets.load_fsdd(tmp_path / "fsdd", by="digit")
    _write(fsdd / "three_anna.wav", _tone(0.2, rate=8000), rate=8000)
    with pytest.raises(ValueError, match="not <digit>_<speaker>_<index>"):
        datasets.load_fsdd(tmp_path / "fsdd")


def test_file_cut_inside_its_data_chunk_and_float_pcm_scale_raise(tmp_path):
    good = _write(tmp_path / "good.wav", _tone(0.5))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:1000])  # header intact, data chunk cut short
    with pytest.raises(
        datasets.AudioFileError, match=r"cut\.wav is cut short.*truncated"
    ):
        datasets.load_audio(cut)
    assert datasets.load_audio(good)[0].shape == (8000,)
    scaled = _write(tmp_path / "scaled.wav", _tone(0.2) * 16000, subtype="FLOAT")
    with pytest.raises(datasets.AudioFileError, match=r"scaled\.wav .*peaking at 8000"):
        datasets.load_audio(scaled)
    try:
        datasets.load_audio(scaled)
    except datasets.AudioFileError as error:
        assert error.kind == "range"
    # A float file a little over full scale is audio, not PCM stored as float.
    loud = _write(tmp_path / "loud.wav", _tone(0.2) * 2.4, subtype="FLOAT")
    assert np.abs(datasets.load_audio(loud)[0]).max() == pytest.approx(1.2, abs=1e-3)


@pytest.mark.slow
def test_synthesizer_cache_survives_damage_races_and_failed_writes(tmp_path):
    import subprocess
    import sys

    pytest.importorskip(
        "espeakng_loader", reason="the audio extra (espeakng-loader) is not installed"
    )
    first = datasets.synthesize_keywords(("up",), 2, seed=1, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("*.npz")
    good = cache.read_bytes()
    damaged = {
        "truncated": good[: len(good) // 2],
        "bit-flipped": good[:200] + bytes([good[200] ^ 0xFF]) + good[201:],
    }
    for name, data in damaged.items():
        cache.write_bytes(data)
        with pytest.warns(UserWarning, match=rf"{cache.name} is damaged"):
            again = datasets.synthesize_keywords(("up",), 2, seed=1, cache_dir=tmp_path)
        for a, b in zip(first.waveforms, again.waveforms):
            np.testing.assert_array_equal(a, b)
        assert cache.read_bytes() == good, name  # rebuilt
    # Arrays that disagree in length.
    with np.load(cache) as stored:
        arrays = dict(stored)
    arrays["labels"] = arrays["labels"][:1]
    np.savez_compressed(cache, **arrays)
    with pytest.warns(UserWarning, match="1 labels"):
        datasets.synthesize_keywords(("up",), 2, seed=1, cache_dir=tmp_path)
    # Two processes making the same corpus at once: both succeed.
    code = (
        "import sys; from keras_resetfree import datasets; "
        "datasets.synthesize_keywords(('go',), 2, seed=3, cache_dir=sys.argv[1])"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "race")])
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in racers] == [0, 0]
    assert len(list((tmp_path / "race").glob("*.npz"))) == 1
    # A cache folder that cannot be written: the corpus is still returned.
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="Could not write the keyword cache"):
        corpus = datasets.synthesize_keywords(
            ("up",), 2, seed=1, cache_dir=blocked / "x"
        )
    assert len(corpus) == 2 and not list(tmp_path.glob("**/*.tmp.npz"))
