"""The exported keyword model on a Cortex-M4 build of TensorFlow Lite Micro, under QEMU.

    python mcu/check.py [--sketch FOLDER] [--frames 10000]     (or: make mcu-test)

Takes a sketch folder (default: the one shipped in the package, with its
trained model) and builds TFLite Micro, the sketch's portable parts
(`audio_frontend`, `frame_io`, `detector`), its model and `harness.cc` for the
Nano 33 BLE's Cortex-M4F with Debian's arm-none-eabi-gcc, twice: reference
kernels and CMSIS-NN kernels (../shared/tflm/<kernels>, or $TFLM_DIR/<kernels>). Each
image runs under `qemu-system-arm -M mps2-an386` with semihosting, and:

1. frames: a never-reset stream of recorded keywords in background noise
   (Speech Commands from ../shared/data; generated audio when it is absent),
   quantized on the host as `MicroStepper` quantizes, goes through Invoke
   frame by frame; the int8 outputs are compared with `MicroStepper` (the
   tflite-micro Python interpreter, reference kernels) over every frame;
2. audio: the same stream's int16 audio goes through the sketch's C++ front
   end, model and detector; its detections are compared with
   `metrics.detect` on the Python MFCC features run through `MicroStepper`.

Prints a table of flash and RAM (`arm-none-eabi-size`), the arena the
harness used against `inspect`'s host estimate, and the differences; exits
non-zero when the reference build is not bit-exact or a check fails.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KERNELS = ("reference", "cmsis_nn")
QEMU = [
    "qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
    "-semihosting-config", "enable=on,target=native",
]  # fmt: skip


def _array(source, name, kind=float):
    """The values of `name[] = {...}` in a generated C++ source."""
    match = re.search(rf"{name}\[\]\s*=\s*\{{(.*?)\}};", source, re.S)
    if match is None:
        raise ValueError(f"no array {name} in the sketch's sources")
    body = match.group(1)
    if kind is bytes:
        return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))
    return np.array(
        [float(v.rstrip("f")) for v in body.replace("\n", " ").split(",") if v.strip()]
    )


def _constant(source, name):
    match = re.search(rf"constexpr\s+\w+\s+{name}\s*=\s*([^;]+);", source)
    if match is None:
        raise ValueError(f"no constant {name} in the sketch's headers")
    return match.group(1).strip().rstrip("f")


def read_sketch(folder):
    """The model bytes, standardisation, front-end and detector settings of a sketch folder."""
    folder = Path(folder)
    model = _array((folder / "model_data.cpp").read_text(), "g_model", bytes)
    features = (folder / "feature_config.cpp").read_text()
    header = (folder / "feature_config.h").read_text()
    settings = (folder / "model_settings.h").read_text()
    labels = re.search(r"kLabels\[kNumClasses\]\s*=\s*\{(.*?)\};", settings).group(1)
    ignored = re.search(r"kIgnoredClasses\[kNumClasses\]\s*=\s*\{(.*?)\};", settings)
    return {
        "model": model,
        "mean": _array(features, "kFeatureMean"),
        "inverse_std": _array(features, "kFeatureInverseStd"),
        "front_end": {
            name: int(_constant(header, constant))
            for name, constant in (
                ("sample_rate", "kSampleRate"),
                ("frame_length", "kFrameLength"),
                ("frame_step", "kFrameStep"),
                ("fft_length", "kFftLength"),
                ("num_mel_bins", "kNumMelBins"),
                ("num_coefficients", "kNumCoefficients"),
            )
        },
        "labels": re.findall(r'"((?:[^"\\]|\\.)*)"', labels),
        "ignored": [
            i for i, v in enumerate(ignored.group(1).split(",")) if v.strip() == "true"
        ],
        "threshold": float(_constant(settings, "kDetectionThreshold")),
        "smoothing": int(_constant(settings, "kSmoothingFrames")),
        "refractory": int(_constant(settings, "kRefractoryFrames")),
        "arena": int(_constant(settings, "kTensorArenaSize")),
    }


def recorded_stream(labels, sample_rate, frames, seed):
    """int16 audio of a never-reset stream of `labels` in background noise, >= `frames` frames."""
    from keras_resetfree import datasets, streams

    try:
        data = datasets.load_speech_commands(
            words=[w for w in labels if not w.startswith("_")],
            unknown=False,
            silence=False,
            sample_rate=sample_rate,
        )
        noise = datasets.load_background_noise(sample_rate=sample_rate)
        source = "Speech Commands clips in _background_noise_ (../shared/data)"
    except FileNotFoundError:
        data, noise = None, None
    if data is None:
        rng = np.random.default_rng(seed)
        seconds = frames / 50 + 2
        audio = 0.05 * rng.standard_normal(int(seconds * sample_rate))
        t = np.arange(len(audio)) / sample_rate
        audio += (
            0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(t)) * t) * (np.sin(t) > 0.5)
        )
        return (np.clip(audio, -1, 1) * 32767).astype(
            "<i2"
        ), "generated tones in noise (no ../shared/data)"
    count = max(10, frames // 80)
    while True:
        stream = streams.KeywordStream(
            data, noise=noise, num_segments=count, snr_db=(5.0, 20.0), seed=seed,
            keep_waveform=True,
        ).build()  # fmt: skip
        if len(stream) >= frames:
            return (np.clip(stream.waveform, -1, 1) * 32767).astype("<i2"), source
        count = int(count * 1.3) + 1


_REGISTRATION = re.compile(
    r"^TFLMRegistration\*?\s+Register_([A-Z0-9_]+)\s*\(\s*\)\s*\{", re.M
)


# TFLite Micro's test support, which no application links.
_TEST_SUPPORT = [
    f"tensorflow/lite/micro/{name}.cc"
    for name in (
        "fake_micro_context", "mock_micro_graph", "test_helpers", "test_helper_custom_ops",
        "kernels/kernel_runner", "recording_micro_allocator",
        "arena_allocator/recording_single_arena_buffer_allocator",
    )
]  # fmt: skip


def unneeded_sources(tree, ops):
    """The sources of `tree` that an application running a model of the builtin
    `ops` never links, relative to `tree`: each kernel file that registers ops
    (`Register_X()`), none of them used, with its helpers (`X_*.cc` beside it or
    in micro/kernels that register nothing); the signal library (with the kissfft
    it wraps) when none of its ops is used; and TFLite Micro's test support.
    Leaving them out of the library saves most of its build time. Everything
    else is kept, so a wrong guess fails at link time, not silently."""
    tree = Path(tree)
    ops = {op.upper() for op in ops}
    kernels = tree / "tensorflow/lite/micro/kernels"
    registering = {}
    for source in tree.rglob("*.cc"):
        if source.parent.name in ("kernels", "cmsis_nn") and "kernels" in source.parts:
            registering[source] = _REGISTRATION.findall(
                source.read_text(errors="replace")
            )
    unused = {s for s, names in registering.items() if names and not ops & set(names)}
    for source in list(unused):
        for folder in (source.parent, kernels):
            unused.update(
                helper
                for helper in folder.glob(f"{source.stem}_*.cc")
                if not registering.get(helper)
            )
    if all(
        s in unused
        for s, names in registering.items()
        if names and s.is_relative_to(tree / "signal")
    ):
        for folder in ("signal", "third_party/kissfft"):
            unused.update(
                s for s in (tree / folder).rglob("*") if s.suffix in (".c", ".cc")
            )
    unused.update(tree / name for name in _TEST_SUPPORT if (tree / name).exists())
    return sorted(str(s.relative_to(tree)) for s in unused)


def build(kernels, sketch, build_root, tflm_root, ops):
    build_dir = build_root / kernels
    tree = Path(tflm_root) / kernels
    if not (tree / "tensorflow" / "lite" / "micro").is_dir():
        sys.exit(
            f"No TFLite Micro source tree at {tree}: point TFLM_DIR (or --tflm-dir) at a "
            "folder holding reference/ and cmsis_nn/ trees from create_tflm_tree.py."
        )
    command = [
        "make", "-C", str(HERE), "app", f"KERNELS={kernels}", f"SKETCH={sketch}",
        f"BUILD={build_dir}", f"TFLM_TREE={tree}", f"-j{os.cpu_count() or 1}",
        "EXCLUDE=" + " ".join(unneeded_sources(tree, ops)),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(
            f"build with {kernels} kernels failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    size = subprocess.run(
        ["arm-none-eabi-size", "-A", str(build_dir / "app.elf")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sections = dict(
        (m.group(1), int(m.group(2)))
        for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", size, re.M)
    )
    flash = sum(
        sections.get(s, 0)
        for s in (
            ".text",
            ".ARM.exidx",
            ".preinit_array",
            ".init_array",
            ".fini_array",
            ".data",
        )
    )
    ram = sections.get(".data", 0) + sections.get(".bss", 0)
    return build_dir / "app.elf", flash, ram


def run(elf, mode, payload, count, timeout):
    """Runs the image on `payload` in a fresh folder; returns (stdout, output bytes)."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "mcu_input.bin").write_bytes(
            np.array([mode, count], "<i4").tobytes() + payload
        )
        stdout = _emulate(elf, folder, timeout)
        return stdout, (folder / "mcu_output.bin").read_bytes()


def _emulate(elf, folder, timeout):
    """QEMU's output of the image, or an exit naming why it failed. TFLite Micro's
    abort prints HALTED and then spins for ever: stop at that line, not at the timeout."""
    process = subprocess.Popen(
        [*QEMU, "-kernel", str(elf)], cwd=folder, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "HALTED":
                process.kill()
                break
    finally:
        timer.cancel()
        process.wait()
    stdout = "".join(lines)
    tail = "".join(lines[-20:])
    if lines and lines[-1].strip() == "HALTED":
        sys.exit(
            f"{elf}: TFLite Micro aborted (HALTED: a kernel's check failed) under QEMU:\n{tail}"
        )
    if "done" not in stdout:
        if process.returncode == -9:
            sys.exit(f"{elf} did not finish within {timeout} s under QEMU:\n{tail}")
        sys.exit(f"{elf} failed under QEMU:\n{tail}")
    return stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sketch", default=None, help="a sketch folder (default: the package's)"
    )
    parser.add_argument(
        "--frames", type=int, default=10000, help="frames to stream (>= this many)"
    )
    parser.add_argument("--build", default=str(HERE / "build"), help="build folder")
    parser.add_argument("--tflm-dir", default=os.environ.get("TFLM_DIR", str(HERE.parent.parent / "shared" / "tflm")),
                        help="folder holding reference/ and cmsis_nn/ TFLM trees (default ../shared/tflm)")  # fmt: skip
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                     "libstdc++-arm-none-eabi-newlib qemu-system-arm (make mcu-test does)")  # fmt: skip
    start = time.perf_counter()

    from keras_resetfree import export, features, metrics
    from keras_resetfree.export import MicroStepper
    from keras_resetfree.recipes.deploy import sketch_template
    from keras_resetfree.recipes.scoring import probabilities

    sketch = Path(args.sketch) if args.sketch else sketch_template()
    build_root = Path(args.build)
    work = build_root / "sketch"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sketch, work)
    info = read_sketch(work)
    report = export.inspect(info["model"])
    mfcc = features.MFCC(**info["front_end"])

    audio, source = recorded_stream(
        info["labels"], mfcc.sample_rate, args.frames, args.seed
    )
    python_features = mfcc.compute_numpy(audio.astype("float32") / 32768.0)
    standardized = (python_features - info["mean"]) * info["inverse_std"]
    stepper = MicroStepper(info["model"])
    expected = stepper.run(standardized)
    frames_payload = stepper.quantize(standardized).tobytes()
    if stepper.y_quant is None:
        sys.exit(
            "The check is for quantized (int8 / int16x8) models; this one is float."
        )
    y_scale, y_zero = stepper.y_quant
    output_dtype = np.dtype(report.output["dtype"])
    python_detections = metrics.detect(
        probabilities(expected), info["threshold"], info["smoothing"],
        info["refractory"], info["ignored"],
    )  # fmt: skip
    print(
        f"stream: {source}; {len(standardized)} frames ({len(audio) / mfcc.sample_rate:.0f} s), "
        f"never reset; model {len(info['model']):,} B, labels {info['labels']}"
    )

    results = {"frames": len(standardized), "source": source, "builds": {}}
    outputs = {}
    for kernels in args.kernels:
        elf, flash, ram = build(kernels, work, build_root, args.tflm_dir, report.ops)
        stdout, raw = run(elf, 0, frames_payload, len(standardized), timeout=1200)
        arena_used = int(re.search(r"arena_used (\d+)", stdout).group(1))
        got = np.frombuffer(raw, output_dtype).reshape(len(standardized), -1)
        outputs[kernels] = got
        dequantized = (got.astype("float32") - y_zero) * y_scale
        audio_out, _ = run(elf, 1, audio.tobytes(), len(audio), timeout=1200)
        board = [
            tuple(map(int, m)) for m in re.findall(r"detection (\d+) (\d+)", audio_out)
        ]
        results["builds"][kernels] = {
            "flash_bytes": flash,
            "ram_bytes": ram,
            "arena_used_bytes": arena_used,
            "frames_differing_from_micro_stepper": int(
                np.any(dequantized != expected, axis=1).sum()
            ),
            "max_abs_difference": float(np.abs(dequantized - expected).max()),
            "detections_board": len(board),
            "detections_python": len(python_detections),
            "detections_equal": board == python_detections,
            "board_detections": board,
        }
    results["python_detections"] = python_detections
    if len(outputs) == 2:
        steps = np.abs(
            outputs["cmsis_nn"].astype(int) - outputs["reference"].astype(int)
        )
        results["cmsis_vs_reference_frames_differing"] = int(
            np.any(steps, axis=1).sum()
        )
        results["cmsis_vs_reference_max_steps"] = int(steps.max())

    print(f"host estimate (export.inspect): arena {report.arena_bytes:,} B; sketch arena "
          f"(model_settings.h) {info['arena']:,} B")  # fmt: skip
    print("| kernels | flash (B) | RAM (B, .data + .bss, arena included) | arena used (B) "
          "| frames differing from MicroStepper | detections: board / Python, equal |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for kernels, r in results["builds"].items():
        print(f"| {kernels} | {r['flash_bytes']:,} | {r['ram_bytes']:,} | {r['arena_used_bytes']:,} "
              f"| {r['frames_differing_from_micro_stepper']} of {len(standardized)} "
              f"(max {r['max_abs_difference']:.3g}) | {r['detections_board']} / "
              f"{r['detections_python']}, {'yes' if r['detections_equal'] else 'no'} |")  # fmt: skip
    if len(outputs) == 2:
        print(f"CMSIS-NN vs reference: {results['cmsis_vs_reference_frames_differing']} of "
              f"{len(standardized)} frames differ, by at most "
              f"{results['cmsis_vs_reference_max_steps']} quantization steps")  # fmt: skip
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    failures = []
    if len(standardized) < args.frames:
        failures.append(f"only {len(standardized)} frames streamed")
    for kernels, r in results["builds"].items():
        if r["arena_used_bytes"] > info["arena"]:
            failures.append(f"{kernels}: more arena used than model_settings.h gives")
    reference = results["builds"].get("reference")
    if reference and reference["frames_differing_from_micro_stepper"]:
        failures.append("the reference build is not bit-exact with MicroStepper")
    if reference and not reference["detections_equal"]:
        failures.append("the board's detections differ from metrics.detect's")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
