"""TFLite Micro cost per frame: stateful int8 GRU keyword model vs a sliding-window CNN.

    KERAS_BACKEND=tensorflow python benchmarks/bench_tflm.py [--size quick] [--units 64]
        [--agreement vanilla_rnn gru lstm ssm spiking]

Both models are trained on the same 10 Speech Commands words (the `kws` task
of `keras_resetfree.experiment`, speaker split, background noise between
words; needs `../shared/data`), on standardised MFCCs (13 per 20 ms frame),
with the same loss (ResetFreeLoss: cross-entropy on informative frames, KL to
uniform on noise):

- reset-free GRU: one Invoke per frame, its state inside the model;
- sliding window, as TFLite Micro's micro_speech: a tiny CNN (Conv2D 8
  filters 10x8, stride 2, then Dense) re-run on the last 49 frames (~1 s)
  at every 20 ms stride, with nothing carried between Invokes.

Both are converted to int8 and run in the TFLite Micro interpreter
(`tflite_micro`, reference kernels, this host's CPU). Printed: accuracy of
each on the same never-reset test stream (acc_p at the mask's decision frame,
hit rate and false alarms per hour of `metrics.score_detections`), flash,
tensor arena, state bytes, MACs per frame, and the measured time of Invoke
per frame, with the sliding-window / GRU ratios of the last two, measured in
this run. `--agreement` also trains the listed families and prints their
int8-vs-float and int16x8-vs-float argmax agreement (on the frames the
temporal-intensity mask marks informative) and acc_p on the test stream, then
the hit rate and false alarms per hour of each family in float, int8 and
int16x8.
"""

import argparse
import time

import numpy as np


def standardizer(features):
    import keras

    normalization = keras.layers.Normalization(axis=-1)
    normalization.adapt(features)
    return lambda x: keras.ops.convert_to_numpy(normalization(x))


def load_kws(size, seed, converted):
    """(task data, training stream, standardize, standardised test features); TensorFlow only."""
    import keras

    from keras_resetfree import experiment

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(
            f"Run with KERAS_BACKEND=tensorflow (the {converted} is converted here)."
        )
    data = experiment.load_task("kws", size, seed)
    train = data.train["temporal_intensity"]
    standardize = standardizer(train.features)
    return data, train, standardize, standardize(data.test.features)


def train_recurrent(family, train, standardize, classes, units, epochs, seed):
    import keras

    from keras_resetfree import ResetFreeLoss
    from keras_resetfree.recipes import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(family, train.features.shape[1], classes, size=units)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=ResetFreeLoss(from_logits=True)
    )
    x, y = train.windows(200)
    model.fit(standardize(x), y, batch_size=32, epochs=epochs, verbose=0)
    return model


def windows_ending_at(features, window, frames):
    """`(len(frames), window, features, 1)`: the `window` frames ending at each frame (zeros before the start)."""
    padded = np.concatenate(
        [np.zeros((window - 1, features.shape[1]), features.dtype), features]
    )
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.transpose(view[frames], (0, 2, 1))[..., None]


def build_cnn(window, num_features, classes):
    """micro_speech's tiny_conv: one strided convolution, then logits."""
    import keras

    inputs = keras.Input((window, num_features, 1))
    x = keras.layers.Conv2D(8, (10, 8), strides=2, padding="same", activation="relu")(
        inputs
    )
    x = keras.layers.Dropout(0.2)(x)
    logits = keras.layers.Dense(classes)(keras.layers.Flatten()(x))
    return keras.Model(inputs, logits, name="sliding_window_cnn")


def train_cnn(train, standardize, classes, window, epochs, seed):
    import keras

    from keras_resetfree import ResetFreeLoss

    keras.utils.set_random_seed(seed)
    features = standardize(train.features)
    ends = np.arange(window - 1, len(train), 2)  # every other frame: 40 ms stride
    x = windows_ending_at(features, window, ends)
    y = train.labels[ends][:, None]  # the label (or noise) of the window's last frame
    model = build_cnn(window, features.shape[1], classes)
    # Same loss as the recurrent model, on one output per window.
    per_window = keras.Model(
        model.inputs, keras.layers.Reshape((1, classes))(model.outputs[0])
    )
    per_window.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss=ResetFreeLoss(from_logits=True)
    )
    per_window.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return model


def cnn_stream_logits(model, features, window):
    out = []
    for start in range(0, len(features), 4096):
        frames = np.arange(start, min(start + 4096, len(features)))
        out.append(
            model.predict(windows_ending_at(features, window, frames), verbose=0)
        )
    return np.concatenate(out)


def convert_cnn(model, representative):
    import keras
    import tensorflow as tf

    # Weights as constants (flash), as keras_resetfree.export does.
    constants = [
        (v, tf.constant(keras.ops.convert_to_numpy(v.value))) for v in model.variables
    ]

    def forward(x):
        with keras.StatelessScope(state_mapping=constants):
            return model(x, training=False)

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    function = tf.function(forward).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def scores(logits, data):
    from keras_resetfree import recipes

    found = recipes.score(recipes.probabilities(logits), data.test, curve=False)
    return {k: found[k] for k in ("acc_p", "hit_rate", "false_alarms_per_hour")}


def run_micro(data, inputs, report):
    """Runs int8 `inputs` through one TFLite Micro interpreter, in order.

    Returns the dequantized outputs and the mean seconds of one Invoke
    (only Invoke is timed, not the copies in and out).
    """
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(data)
    shape = report.input["shape"]
    interpreter.set_input(np.zeros(shape, np.int8), 0)
    interpreter.invoke()  # warm-up
    interpreter.reset()
    outputs, total = [], 0.0
    for x in inputs:
        interpreter.set_input(x.reshape(shape), 0)
        start = time.perf_counter()
        interpreter.invoke()
        total += time.perf_counter() - start
        outputs.append(interpreter.get_output(0).astype("float32").ravel())
    outputs = (np.stack(outputs) - report.output["zero_point"]) * report.output["scale"]
    return outputs, total / len(inputs)


def quantize(x, report):
    scale, zero = report.input["scale"], report.input["zero_point"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="quick", choices=["smoke", "quick", "full"])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--window", type=int, default=49, help="sliding window, frames")
    parser.add_argument(
        "--frames", type=int, default=2000, help="frames timed in TFLite Micro"
    )
    parser.add_argument("--agreement", nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from keras_resetfree import Streamer, export

    start = time.perf_counter()
    data, train, standardize, test_features = load_kws(args.size, args.seed, "CNN")
    print(
        f"kws task ({args.size}): {data.num_classes} words, training stream {len(train)} frames, "
        f"never-reset test stream {len(data.test)} frames ({len(data.test.segments)} words); "
        f"data in {time.perf_counter() - start:.0f} s"
    )

    gru = train_recurrent(
        "gru", train, standardize, data.num_classes, args.units, args.epochs, args.seed
    )
    gru_float = Streamer(gru).run(test_features[None], chunk_size=250)[0]
    gru_bytes = export.to_tflite(gru, standardize(train.features), quantize="int8")
    gru_int8 = export.MicroStepper(gru_bytes).run(test_features)

    cnn = train_cnn(
        train, standardize, data.num_classes, args.window, args.epochs, args.seed
    )
    cnn_float = cnn_stream_logits(cnn, test_features, args.window)
    calibration = windows_ending_at(
        standardize(train.features), args.window, np.arange(args.window, len(train), 50)
    )[:500]
    cnn_bytes = convert_cnn(cnn, calibration)

    gru_report, cnn_report = export.inspect(gru_bytes), export.inspect(cnn_bytes)
    frames = np.arange(min(args.frames, len(test_features)))
    cnn_inputs = quantize(
        windows_ending_at(test_features, args.window, frames), cnn_report
    )
    cnn_int8, cnn_seconds = run_micro(cnn_bytes, cnn_inputs, cnn_report)
    gru_inputs = quantize(test_features[frames], gru_report)
    _, gru_seconds = run_micro(gru_bytes, gru_inputs, gru_report)

    rows = [
        ("reset-free GRU", gru_report, scores(gru_float, data), scores(gru_int8, data),
         gru_seconds, gru_report.state_bytes),
        (f"sliding-window CNN ({args.window} frames)", cnn_report, scores(cnn_float, data),
         None, cnn_seconds, int(np.prod(cnn_report.input["shape"]))),
    ]  # fmt: skip
    print(
        "\n| model | acc_p float | acc_p int8 | hit rate | false alarms / h | flash B | "
        "arena B | state B | MACs / frame | Invoke per frame, us |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, report, float_scores, int8_scores, seconds, state in rows:
        int8 = f"{100 * int8_scores['acc_p']:.1f} %" if int8_scores else "-"
        print(
            f"| {name} | {100 * float_scores['acc_p']:.1f} % | {int8} | "
            f"{100 * float_scores['hit_rate']:.1f} % | {float_scores['false_alarms_per_hour']:.0f} | "
            f"{report.flash_bytes:,} | {report.arena_bytes:,} | {state:,} | "
            f"{report.macs_per_frame:,} | {1e6 * seconds:.1f} |"
        )
    print(
        f"\nsliding window / reset-free GRU, same run: {cnn_seconds / gru_seconds:.1f}x the Invoke "
        f"time per frame, {cnn_report.macs_per_frame / gru_report.macs_per_frame:.1f}x the MACs "
        f"per frame ({len(frames)} frames timed, TFLite Micro reference kernels on this host)"
    )
    informative = data.test.labels[frames] >= 0
    agreement = np.mean(
        cnn_int8.argmax(-1)[informative] == cnn_float[frames].argmax(-1)[informative]
    )
    print(
        f"sliding-window CNN int8 vs float argmax agreement on the word frames of the "
        f"{len(frames)} timed frames: {100 * agreement:.1f} %"
    )
    print(f"state: the GRU keeps {gru_report.state_bytes} B of int8 state; the window model "
          f"holds {rows[1][5]} B of int8 input frames")  # fmt: skip

    if args.agreement:
        print(
            "\nint8 / int16x8 (int16 activations) vs float on the test stream: argmax agreement on "
            "the frames the temporal-intensity mask marks informative, acc_p"
        )
        print(
            "| family | acc_p float | int8 agreement | int8 agreement where float's top-2 margin "
            "> 1 output step (share of frames) | int8 acc_p | int8 flash B / state B "
            "| int16x8 agreement | int16x8 acc_p | int16x8 flash B / state B |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
    informative = data.test.mask.astype(bool)
    detections = []
    for family in args.agreement:
        model = (
            gru
            if family == "gru"
            else train_recurrent(
                family, train, standardize, data.num_classes, args.units, args.epochs,
                args.seed,
            )
        )  # fmt: skip
        reference = Streamer(model).run(test_features[None], chunk_size=250)[0]
        detected = {"float": scores(reference, data)}
        cells = [f"{100 * detected['float']['acc_p']:.1f} %"]
        for mode in ("int8", "int16x8"):
            if mode == "int16x8" and family == "spiking":
                cells += ["no 16x8 GREATER", "-", "-"]
                continue
            converted = export.to_tflite(
                model, standardize(train.features), quantize=mode
            )
            got = export.MicroStepper(converted).run(test_features)
            share = np.mean(
                got.argmax(-1)[informative] == reference.argmax(-1)[informative]
            )
            report = export.inspect(converted)
            cells.append(f"{100 * share:.2f} %")
            if mode == "int8":
                # Frames whose float decision the int8 output can resolve: the
                # float top-2 margin exceeds one step of the int8 output.
                top2 = np.sort(reference, axis=-1)[:, -2:]
                resolvable = informative & (
                    top2[:, 1] - top2[:, 0] > report.output["scale"]
                )
                resolved = np.mean(
                    got.argmax(-1)[resolvable] == reference.argmax(-1)[resolvable]
                )
                cells.append(
                    f"{100 * resolved:.2f} % ({100 * resolvable.sum() / informative.sum():.0f} %)"
                )
            detected[mode] = scores(got, data)
            cells += [
                f"{100 * detected[mode]['acc_p']:.1f} %",
                f"{report.flash_bytes:,} / {report.state_bytes}",
            ]
        print(f"| {family} | " + " | ".join(cells) + " |")
        detections.append((family, detected))
    if detections:
        print(
            "\nDetections on the same stream (metrics.score_detections on the softmax of "
            "each model's outputs), float / int8 / int16x8"
        )
        print("| family | hit rate | false alarms / h |")
        print("|---|---|---|")
        for family, detected in detections:
            modes = [detected.get(m) for m in ("float", "int8", "int16x8")]
            hits = " / ".join(
                f"{100 * d['hit_rate']:.1f} %" if d else "-" for d in modes
            )
            alarms = " / ".join(
                f"{d['false_alarms_per_hour']:.0f}" if d else "-" for d in modes
            )
            print(f"| {family} | {hits} | {alarms} |")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
