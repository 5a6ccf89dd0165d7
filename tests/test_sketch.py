"""The Arduino sketch's portable C++ (keras_resetfree/export/resetfree_kws) against the library, on the host."""

import ctypes
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_resetfree import features, metrics
from keras_resetfree.export import sketch
from tests.audio_signals import on_off_signal

ROOT = Path(__file__).resolve().parents[1]
SKETCH = ROOT / "keras_resetfree" / "export" / "resetfree_kws"
SHIM = Path(__file__).parent / "native" / "sketch_shim.cpp"
CXX = shutil.which("g++") or shutil.which("c++")
PORTABLE_SOURCES = (
    "audio_frontend.h",
    "audio_frontend.cpp",
    "detector.h",
    "detector.cpp",
)


def _build(folder):
    """Compiles the sketch's front end and detector with the feature tables in `folder`."""
    if CXX is None:
        pytest.skip("no C++ compiler (g++) to build the sketch's sources on the host")
    # The sketch's fixed sources beside the generated tables (a quoted include
    # looks in the including file's folder first, which holds the committed tables).
    for name in PORTABLE_SOURCES:
        shutil.copy(SKETCH / name, folder / name)
    library = folder / "libsketch.so"
    command = [
        CXX, "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
        str(folder / "audio_frontend.cpp"), str(folder / "detector.cpp"),
        str(folder / "feature_config.cpp"), f"-I{folder}", str(SHIM), "-o", str(library),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lib = ctypes.CDLL(str(library))
    lib.rf_stream_features.restype = ctypes.c_int
    lib.rf_detect.restype = ctypes.c_int
    lib.rf_detect.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_double,
                              ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_uint64]  # fmt: skip
    lib.rf_frame_seconds.restype = ctypes.c_uint64
    lib.rf_frame_seconds.argtypes = [ctypes.c_uint64, ctypes.c_int, ctypes.c_int]
    return lib


def _pointer(array):
    return array.ctypes.data_as(ctypes.c_void_p)


def _board_features(lib, audio, chunks, coefficients):
    audio = np.ascontiguousarray(audio, dtype=np.int16)
    chunks = np.asarray(chunks, dtype=np.int32)
    frames = len(audio)  # more than enough
    out = np.zeros((frames, coefficients), np.float32)
    n = lib.rf_stream_features(
        _pointer(audio),
        len(audio),
        _pointer(chunks),
        len(chunks),
        _pointer(out),
        frames,
    )
    assert n >= 0
    return out[:n]


def _speech(shared):
    """One second of a real Speech Commands word, if the data is there."""
    from keras_resetfree.datasets import load_audio

    files = sorted((shared / "speech_commands").glob("*/*.wav"))
    files = [f for f in files if "_background_noise_" not in str(f)]
    return load_audio(files[0], 16000)[0] if files else None


CONFIGS = {
    "default 16 kHz": dict(sample_rate=16000),  # 30 ms / 20 ms, 40 mel, 13 MFCC
    "8 kHz, step > length": dict(
        sample_rate=8000,
        frame_length=200,
        frame_step=240,
        num_mel_bins=20,
        num_coefficients=10,
        lower_edge_hertz=60.0,
        upper_edge_hertz=3800.0,
    ),  # fmt: skip
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_board_features_match_the_mfcc_layer(config, tmp_path, request):
    mfcc = features.MFCC(**CONFIGS[config])
    rng = np.random.default_rng(0)
    mean = rng.normal(size=mfcc.num_coefficients) * 5
    variance = rng.uniform(0.5, 30, size=mfcc.num_coefficients)
    sketch.write_feature_config(tmp_path, mfcc, (mean, variance))
    lib = _build(tmp_path)
    signals = [
        on_off_signal("chirp", 10, seed=1, seconds=3.0)[0],
        on_off_signal("noise", 0, seed=2, seconds=2.0)[0],
        np.zeros(8000, "float32"),  # digital silence: every mel energy at the log floor
        0.99
        * np.sign(np.sin(np.arange(16000) / 7.0)).astype("float32"),  # near full scale
    ]
    try:
        speech = _speech(request.getfixturevalue("shared_data"))
        if speech is not None:
            signals.append(speech)
    except pytest.skip.Exception:
        pass  # synthetic signals only
    for signal in signals:
        pcm = np.clip(np.round(signal * 32768), -32768, 32767).astype(np.int16)
        expected = mfcc.compute_numpy(pcm.astype("float32") / 32768.0)
        expected = (expected - mean) / np.sqrt(variance)
        # Chunks as irregular as an interrupt's: frames straddle them.
        got = _board_features(lib, pcm, [256, 1, 77, 1000, 3], mfcc.num_coefficients)
        assert got.shape == expected.shape
        error = np.abs(got - expected).max()
        print(f"{config}: {len(got)} frames, max |board - Keras| {error:.2e}")
        np.testing.assert_allclose(got, expected, atol=5e-4, rtol=0)


def test_board_framing_is_independent_of_chunking(tmp_path):
    mfcc = features.MFCC()
    sketch.write_feature_config(tmp_path, mfcc)
    lib = _build(tmp_path)
    pcm = (on_off_signal("tone", 10, seed=3, seconds=2.0)[0] * 32767).astype(np.int16)
    whole = _board_features(lib, pcm, [len(pcm)], 13)
    for chunks in ([1], [320], [481, 13]):
        np.testing.assert_array_equal(_board_features(lib, pcm, chunks, 13), whole)


def test_board_detector_matches_detect(tmp_path):
    sketch.write_feature_config(tmp_path, features.MFCC())
    lib = _build(tmp_path)
    rng = np.random.default_rng(0)
    classes, frames = 7, 20_000
    logits = rng.normal(size=(frames, classes)) * 2
    # Bursts of one class, as words in a stream.
    for start in rng.integers(0, frames - 40, size=300):
        logits[start : start + 30, rng.integers(classes)] += 6
    probs = np.zeros_like(logits, dtype=np.float32)
    lib.rf_softmax.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    for t in range(0, frames, 997):  # the board's softmax
        row = np.ascontiguousarray(logits[t], np.float32)
        out = np.zeros(classes, np.float32)
        lib.rf_softmax(_pointer(row), classes, _pointer(out))
        np.testing.assert_allclose(
            out, keras.ops.convert_to_numpy(keras.ops.softmax(row)), atol=1e-6
        )
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
    # The frame count starts at 0, just below the 32-bit wrap (497 days at 50
    # frames/s for a signed long, 994 for an unsigned one) and just below the
    # 64-bit wrap: the detections are the same.
    starts = (0, 2**31 - 7_000, 2**32 - 7_000, 2**64 - 7_000)
    for (threshold, smoothing, refractory, ignore), start in itertools.product(
        [
            (0.5, 5, 50, ()),
            (0.75, 1, 0, (0,)),
            (0.25, 20, 10, (2, 5)),
        ],
        starts,
    ):
        ignored = np.array([c in ignore for c in range(classes)], dtype=np.bool_)
        out_frames = np.zeros(frames, np.int32)
        out_classes = np.zeros(frames, np.int32)
        n = lib.rf_detect(
            _pointer(probs), frames, classes, threshold, smoothing, refractory,
            _pointer(ignored), _pointer(out_frames), _pointer(out_classes), start,
        )  # fmt: skip
        expected = metrics.detect(probs, threshold, smoothing, refractory, ignore)
        got = list(zip(out_frames[:n].tolist(), out_classes[:n].tolist()))
        assert len(expected) > 50
        assert got == expected
    bad = lib.rf_detect(_pointer(probs), frames, classes, 0.5, 0, 5, None,
                        _pointer(out_frames), _pointer(out_classes), 0)  # fmt: skip
    assert bad == -1
    # The time printed with a detection, from the 64-bit frame count.
    for frames_seen in (0, 49, 50, 2**32 - 1, 2**32 + 50, 2**40, 2**64 - 1):
        assert (
            lib.rf_frame_seconds(frames_seen, 320, 16000) == frames_seen * 320 // 16000
        )


def test_resolver_methods():
    # Names as in tensorflow/lite/micro/micro_mutable_op_resolver.h.
    for op, method in {
        "FULLY_CONNECTED": "AddFullyConnected",
        "CONV_2D": "AddConv2D",
        "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
        "L2_POOL_2D": "AddL2Pool2D",
        "VAR_HANDLE": "AddVarHandle",
        "READ_VARIABLE": "AddReadVariable",
        "ASSIGN_VARIABLE": "AddAssignVariable",
        "CALL_ONCE": "AddCallOnce",
        "SELECT_V2": "AddSelectV2",
        "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
        "ADD_N": "AddAddN",
        "LOG_SOFTMAX": "AddLogSoftmax",
        "CUMSUM": "AddCumSum",
        "PADV2": "AddPadV2",
    }.items():
        assert sketch.resolver_method(op) == method


def test_feature_config_refuses_what_the_board_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        sketch.write_feature_config(tmp_path, features.MFCC(fft_length=600))
    with pytest.raises(ValueError, match="13 coefficients"):
        sketch.write_feature_config(
            tmp_path, features.MFCC(), (np.zeros(12), np.ones(12))
        )


def _committed_model_bytes():
    text = (SKETCH / "model_data.cpp").read_text()
    body = text[text.index("{") : text.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def _table(text, name):
    match = re.search(rf"{name}\[\] = \{{(.*?)\}};", text, re.S)
    return np.array(
        [
            float(v.rstrip("f"))
            for v in match.group(1).replace("\n", " ").split(",")
            if v.strip()
        ]
    )


def test_committed_sketch_files_are_consistent(tmp_path):
    pytest.importorskip(
        "tflite_micro", reason="the tflm extra (tflite-micro) is not installed"
    )
    from keras_resetfree import export

    data = _committed_model_bytes()
    length = int(
        re.search(
            r"g_model_len = (\d+);", (SKETCH / "model_data.cpp").read_text()
        ).group(1)
    )
    assert len(data) == length
    report = export.inspect(data)
    assert report.input["dtype"] == "int8" and report.resource_variables >= 1
    # The op resolver registers exactly the model's ops.
    assert (SKETCH / "model_ops.h").read_text() == sketch.op_resolver_source(data)
    settings = (SKETCH / "model_settings.h").read_text()
    classes = int(re.search(r"kNumClasses = (\d+);", settings).group(1))
    assert classes == report.output["shape"][-1]
    assert (
        int(re.search(r"kNumResourceVariables = (\d+);", settings).group(1))
        == report.resource_variables
    )
    assert (
        int(re.search(r"kTensorArenaSize = (\d+);", settings).group(1))
        >= report.arena_bytes
    )
    # The feature tables are the default MFCC layer's (the standardisation is the model's own).
    committed = (SKETCH / "feature_config.cpp").read_text()
    mean = _table(committed, "kFeatureMean")
    inverse_std = _table(committed, "kFeatureInverseStd")
    assert np.all(inverse_std > 0)
    sketch.write_feature_config(tmp_path, features.MFCC(), (mean, 1.0 / inverse_std**2))
    assert (tmp_path / "feature_config.h").read_text() == (
        SKETCH / "feature_config.h"
    ).read_text()
    regenerated = (tmp_path / "feature_config.cpp").read_text()
    for name in (
        "kWindow",
        "kTwiddleCos",
        "kTwiddleSin",
        "kMelFirstBin",
        "kMelBinCount",
        "kMelWeights",
        "kDct",
    ):
        np.testing.assert_array_equal(
            _table(committed, name), _table(regenerated, name)
        )
    # And the model runs in the TFLite Micro interpreter on standardised features.
    outputs = export.MicroStepper(data).run(
        np.random.default_rng(0).normal(size=(50, report.input["shape"][-1]))
    )
    assert np.all(np.isfinite(outputs))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="writes files from converted models; conversion from every backend is tested in test_export",
)
def test_write_sketch_files_and_errors(tmp_path):
    pytest.importorskip(
        "tflite_micro", reason="the tflm extra (tflite-micro) is not installed"
    )
    from keras_resetfree import export, layers

    inputs = keras.Input((None, 13))
    model = keras.Model(inputs, keras.layers.Dense(4)(layers.GRU(8)(inputs)))
    stream = np.random.default_rng(0).normal(size=(300, 13)).astype("float32")
    data = export.to_tflite(model, stream, quantize="int8")
    mfcc = features.MFCC()
    labels = ["yes", "no", 'say "hi"', "_silence_"]
    written = export.write_sketch(
        data, tmp_path, mfcc, labels, ignore_classes=[3], threshold=0.6
    )
    assert sorted(p.name for p in written) == [
        "feature_config.cpp", "feature_config.h", "model_data.cpp", "model_data.h",
        "model_ops.h", "model_settings.h",
    ]  # fmt: skip
    assert (tmp_path / "model_ops.h").read_text() == export.op_resolver_source(data)
    ops = {name for name, _ in export.op_details(data)}
    registered = re.findall(
        r"resolver\.(Add\w+)\(\)", (tmp_path / "model_ops.h").read_text()
    )
    assert sorted(registered) == sorted(sketch.resolver_method(op) for op in ops)
    settings = (tmp_path / "model_settings.h").read_text()
    assert '{"yes", "no", "say \\"hi\\"", "_silence_"}' in settings
    assert "{false, false, false, true}" in settings
    assert "kDetectionThreshold = 0.6000000238418579f" in settings
    with pytest.raises(ValueError, match="4 outputs, got 3 labels"):
        export.write_sketch(data, tmp_path, mfcc, labels[:3])
    with pytest.raises(ValueError, match="ignore_classes"):
        export.write_sketch(data, tmp_path, mfcc, labels, ignore_classes=[4])
    with pytest.raises(ValueError, match="one frame of 10 features"):
        export.write_sketch(data, tmp_path, features.MFCC(num_coefficients=10), labels)
    external = export.to_tflite(model, quantize="float", state="external")
    with pytest.raises(ValueError, match="no state inside"):
        export.write_sketch(external, tmp_path, mfcc, labels)
    two = export.to_tflite(model, quantize="float", frames_per_step=2)
    with pytest.raises(ValueError, match="one frame"):
        export.write_sketch(two, tmp_path, mfcc, labels)
