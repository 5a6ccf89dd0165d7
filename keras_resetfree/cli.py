"""The `resetfree` command line."""

import argparse
import sys
import time

FAMILIES = ("vanilla_rnn", "gru", "lstm", "ssm", "spiking")


def build_model(family, num_features, num_classes, units):
    """A per-frame classifier: one recurrent layer of `family`, then logits."""
    import keras

    from keras_resetfree import layers

    inputs = keras.Input((None, num_features))
    if family == "spiking":
        x = layers.SpikingRNN(units, threshold=0.02)(inputs)
        logits = layers.LeakyReadout(num_classes)(x)
    else:
        recurrent = {
            "vanilla_rnn": layers.VanillaRNN(units),
            "gru": layers.GRU(units),
            "lstm": layers.LSTM(units),
            "ssm": layers.SSM(units, state_size=units // 2),
        }[family]
        logits = keras.layers.Dense(num_classes)(recurrent(inputs))
    return keras.Model(inputs, logits, name=f"{family}_classifier")


def keyword_corpus(args):
    """The demo's data: synthesized keywords split by voice, and background noise if found."""
    from keras_resetfree import datasets

    corpus = datasets.synthesize_keywords(args.words, args.per_word, seed=args.seed)
    test = [
        datasets.speaker_partition(v, 0.0, args.test_percent) == "test"
        for v in corpus.speakers
    ]
    train = corpus.subset([i for i, t in enumerate(test) if not t])
    held_out = corpus.subset([i for i, t in enumerate(test) if t])
    if not len(held_out) or not len(train):
        raise SystemExit(
            f"error: {len(corpus)} utterances give {len(train)} for training and {len(held_out)} "
            "from held-out voices; raise --per-word or change --test-percent."
        )
    try:
        noise, noise_name = (
            datasets.load_background_noise(),
            "Speech Commands _background_noise_",
        )
    except FileNotFoundError:
        noise, noise_name = None, "silence (no data folder found)"
    return train, held_out, noise, noise_name


def evaluate_stream(model, stream, chunk, frame_rate):
    """Runs `stream` through a Streamer, never resetting; returns its scores."""
    import keras

    from keras_resetfree import Streamer, metrics

    start = time.perf_counter()
    logits = Streamer(model, batch_size=1).run(stream.features[None], chunk_size=chunk)[
        0
    ]
    seconds = time.perf_counter() - start
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    detections = metrics.score_detections(probs, stream.segments, frame_rate)
    return {
        "acc_f": metrics.frame_accuracy(stream.labels, probs),
        "acc_p": metrics.stream_decision_accuracy(probs, stream.segments, stream.mask),
        "noise_confidence": metrics.noise_confidence(stream.labels, probs),
        "hits": detections.hits,
        "misses": detections.misses,
        "false_alarms_per_hour": detections.false_alarms_per_hour,
        "seconds": seconds,
        "logits": logits,
    }


def demo(args):
    """Synthesized keywords -> never-reset streams -> ResetFreeLoss training -> streaming evaluation."""
    import keras
    import numpy as np

    from keras_resetfree import ResetFreeLoss, metrics, streams

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    train_words, test_words, noise, noise_name = keyword_corpus(args)
    print(
        f"backend {keras.backend.backend()} | {len(args.words)} keywords synthesized with espeak-ng: "
        f"{len(train_words)} utterances for training, {len(test_words)} from held-out voices "
        f"| noise: {noise_name}"
    )
    common = dict(noise=noise, snr_db=(args.snr_min, args.snr_max), mask=args.mask)
    train_builder = streams.KeywordStream(
        train_words, num_segments=args.train_segments, seed=args.seed, **common
    )
    train = train_builder.build()
    test = streams.KeywordStream(
        test_words, num_segments=args.test_segments, seed=args.seed + 1, **common
    ).build()
    print(f"training stream: {train.summary().splitlines()[0]}")
    print(f"test stream (never reset): {test.summary().splitlines()[0]}")
    if args.plot:
        streams.plot_stream(
            streams.KeywordStream(
                test_words,
                num_segments=8,
                seed=args.seed + 1,
                keep_waveform=True,
                **common,
            ).build(),
            args.plot,
            title="test stream: waveform, MFCC, mask and labels",
        )
        print(f"plot of the stream: {args.plot}")

    x, y = train.windows(args.window)
    normalization = keras.layers.Normalization(axis=-1)
    normalization.adapt(train.features)
    inputs = keras.Input((None, train.features.shape[1]))
    classifier = build_model(
        args.family, train.features.shape[1], len(args.words), args.units
    )
    model = keras.Model(inputs, classifier(normalization(inputs)))
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=ResetFreeLoss(kl_weight=args.kl_weight, from_logits=True),
        metrics=[metrics.FrameAccuracy(), metrics.NoiseConfidence()],
    )
    model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=2 if args.verbose else 0)
    print(
        f"trained on {len(x)} windows of {args.window} frames, {args.epochs} epochs, "
        f"in {time.perf_counter() - start:.0f} s (data included)"
    )

    scores = evaluate_stream(model, test, args.chunk, train.frame_rate)
    hours = len(test) / train.frame_rate / 3600
    print(
        f"never-reset test stream ({len(test) / train.frame_rate / 60:.1f} min, chunks of {args.chunk} "
        f"frames, {scores['seconds']:.1f} s): acc_f {100 * scores['acc_f']:.1f} %  "
        f"acc_p {100 * scores['acc_p']:.1f} %  noise confidence {scores['noise_confidence']:.2f} "
        f"(uniform {1 / len(args.words):.2f})"
    )
    print(
        f"detection (threshold 0.5): {scores['hits']} hits, {scores['misses']} misses, "
        f"{scores['false_alarms_per_hour']:.0f} false alarms per hour ({hours:.2f} h)"
    )
    whole = keras.ops.convert_to_numpy(model.predict(test.features[None], verbose=0))[0]
    print(
        f"streamed vs whole-stream logits: max |difference| {np.abs(whole - scores['logits']).max():.2e}"
    )
    if not np.isfinite(scores["logits"]).all():
        print("error: non-finite outputs on the stream", file=sys.stderr)
        return 1
    if args.sketch:
        export_sketch(
            args, model, classifier, normalization, train, test, scores,
            train_builder.features,
        )  # fmt: skip
    return 0


def export_sketch(args, model, classifier, normalization, train, test, scores, mfcc):
    """int8 TFLite Micro model of the demo classifier, checked on the test stream, into a sketch."""
    import warnings

    import keras
    import numpy as np

    from keras_resetfree import export, metrics

    # Standardised outside the model, on the board in float: an int8 input
    # has one scale, too coarse for the small MFCCs if raw features came in.
    def standardized(stream):
        return keras.ops.convert_to_numpy(normalization(stream.features))

    data = export.to_tflite(classifier, standardized(train), quantize="int8")
    logits = export.MicroStepper(data).run(standardized(test))
    informative = test.labels >= 0
    agreement = np.mean(
        logits.argmax(-1)[informative] == scores["logits"].argmax(-1)[informative]
    )
    acc_p = metrics.stream_decision_accuracy(logits, test.segments, test.mask)
    # For comparison: the whole model, Normalization inside, fed raw MFCCs in int8.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning this comparison illustrates
        whole = export.to_tflite(model, train.features, quantize="int8")
    raw = export.MicroStepper(whole).run(test.features)
    raw_agreement = np.mean(
        raw.argmax(-1)[informative] == scores["logits"].argmax(-1)[informative]
    )
    report = export.inspect(data)
    written = export.write_sketch(
        data, args.sketch, mfcc, args.words, normalization, report=report
    )
    print(
        f"int8 TFLite Micro model on the same never-reset stream: argmax agreement with float "
        f"{100 * agreement:.1f} % of informative frames, acc_p {100 * acc_p:.1f} % (float "
        f"{100 * scores['acc_p']:.1f} %); flash {report.flash_bytes:,} B, arena "
        f"{report.arena_bytes:,} B, state {report.state_bytes} B"
    )
    print(
        f"(the same model converted with its Normalization inside, raw MFCCs quantized at its "
        f"int8 input: agreement {100 * raw_agreement:.1f} %)"
    )
    print(
        f"sketch files written: {', '.join(sorted(p.name for p in written))} in {args.sketch}"
    )


def train_command(args):
    """Trains one family one way on a task and saves it as .keras."""
    from keras_resetfree import experiment

    data = experiment.load_task(args.task, args.size, args.seed)
    model, seconds = experiment.train_model(
        data, args.family, args.method, args.size, args.seed, verbose=2
    )
    model.save(args.out)
    print(
        f"trained {args.family} ({args.method}) on {args.task} in {seconds:.0f} s; saved {args.out}"
    )
    return 0


def evaluate_command(args):
    """Scores a saved model on the task's never-reset test stream."""
    import json

    import keras

    from keras_resetfree import experiment

    data = experiment.load_task(args.task, args.size, args.seed)
    model = keras.saving.load_model(args.model)
    scores = experiment.evaluate_model(model, data, args.method, period=args.period)
    for mode, result in scores.items():
        for length, row in result["by_length"].items():
            print(
                f"{mode:>8} reset | {length:>5} segments ({row['frames']} frames): acc_f "
                f"{100 * row['acc_f']:.1f} %  acc_p {100 * row['acc_p']:.1f} %  noise confidence "
                f"{row['noise_confidence']:.2f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)
    return 0


def tune_command(args):
    """KerasTuner search of kl_weight and the mask threshold on a keyword task."""
    from pathlib import Path

    import keras_tuner

    from keras_resetfree import tuning

    train, validation, validation_mask, test, test_mask, classes = (
        tuning.keyword_task_streams(
            args.task, args.train_segments, args.eval_segments, args.seed
        )
    )
    hypermodel = tuning.ResetFreeHyperModel(
        train, validation, classes, families=args.families, units=args.units, epochs=args.epochs,
        decision_mask=validation_mask, seed=args.seed,
    )  # fmt: skip
    tuner_class = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
    }[args.tuner]
    tuner = tuner_class(
        hypermodel,
        objective=tuning.objective(),
        max_trials=args.trials,
        seed=args.seed,
        directory=args.directory,
        project_name=args.task,
        overwrite=False,  # an interrupted search resumes where it stopped
    )
    tuner.search()
    out = Path(args.directory) / args.task
    table = tuning.trials_table(tuner)
    (out / "trials.md").write_text(table + "\n")
    tuning.plot_objective(tuner, out / "objective_vs_kl_weight.png")
    print(table)
    best = tuner.get_best_hyperparameters()[0]
    print(f"best: {best.values}; table and plot in {out}")
    return 0


def convert_command(args):
    """Converts a saved model to a stateful TFLite (Micro) step model; prints what it costs."""
    from pathlib import Path

    import keras
    import numpy as np

    from keras_resetfree import export

    model = keras.saving.load_model(args.model)
    stream = None
    if args.calibration:
        stream = np.load(args.calibration)
        if stream.ndim not in (2, 3) or stream.shape[-1] != model.inputs[0].shape[-1]:
            raise SystemExit(
                f"error: --calibration holds an array of shape {stream.shape}; the model takes "
                f"(frames, {model.inputs[0].shape[-1]}) features."
            )
    try:
        data = export.to_tflite(
            model,
            stream,
            quantize=args.quantize,
            frames_per_step=args.frames_per_step,
            state=args.state,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} B)")
    if args.c_array:
        cc, header = export.write_c_array(data, args.c_array, name=args.name)
        print(f"wrote {cc} and {header} (array {args.name})")
    print(export.inspect(data).summary())
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="resetfree",
        description="Recurrent networks that run on an endless stream and never reset.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "demo",
        help="the whole pipeline offline: synthesized keywords, never-reset streams, training, streaming",
        description=(
            "Synthesizes keywords with espeak-ng (the embedded default), builds keyword streams "
            "with background noise (../shared/data's _background_noise_ when found, else "
            "silence), trains a per-frame classifier with ResetFreeLoss on never-reset windows "
            "(masks from the temporal intensity of the audio), and evaluates it with the Streamer "
            "on a long never-reset stream of held-out voices. Any backend (KERAS_BACKEND)."
        ),
    )
    p.add_argument(
        "--words", nargs="+", default=["yes", "no", "up", "down", "left", "right"]
    )
    p.add_argument(
        "--per-word", type=int, default=60, help="synthesized utterances per word"
    )
    p.add_argument(
        "--test-percent", type=float, default=25.0, help="share of voices held out"
    )
    p.add_argument("--family", choices=FAMILIES, default="gru")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--window", type=int, default=200, help="training window, frames")
    p.add_argument("--train-segments", type=int, default=1500)
    p.add_argument("--test-segments", type=int, default=400)
    p.add_argument("--snr-min", type=float, default=5.0)
    p.add_argument("--snr-max", type=float, default=20.0)
    p.add_argument(
        "--mask",
        choices=["temporal_intensity", "energy", "truth"],
        default="temporal_intensity",
    )
    p.add_argument("--chunk", type=int, default=50, help="frames per Streamer call")
    p.add_argument(
        "--kl-weight",
        type=float,
        default=1.0,
        help="weight of the KL term on noise frames",
    )
    p.add_argument(
        "--plot", default=None, help="save a PNG of a piece of the test stream"
    )
    p.add_argument(
        "--sketch",
        default=None,
        help="also convert the model to int8 TFLite Micro and write the model files of the "
        "Arduino sketch into this folder (e.g. tflite/resetfree_kws)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(run=demo)

    from keras_resetfree.experiment import FAMILIES as PROTOCOL_FAMILIES
    from keras_resetfree.experiment import METHODS, SIZES, TASKS

    for name, run, text in (
        (
            "train",
            train_command,
            "train one family one way on a task (the reset-free protocol)",
        ),
        (
            "evaluate",
            evaluate_command,
            "score a saved model on the task's never-reset test stream",
        ),
    ):
        p = commands.add_parser(
            name, help=text, description=text + "; see keras_resetfree.experiment."
        )
        p.add_argument("--task", choices=TASKS, required=True)
        p.add_argument("--method", choices=METHODS, default="reset_free")
        p.add_argument("--size", choices=sorted(SIZES), default="quick")
        p.add_argument("--seed", type=int, default=0)
        if name == "train":
            p.add_argument("--family", choices=PROTOCOL_FAMILIES, default="gru")
            p.add_argument(
                "--out", required=True, help="where to save the .keras model"
            )
        else:
            p.add_argument(
                "--model", required=True, help="a .keras model saved by resetfree train"
            )
            p.add_argument(
                "--period", type=int, default=None, help="periodic reset, frames"
            )
            p.add_argument("--json", default=None, help="write the scores here")
        p.set_defaults(run=run)

    p = commands.add_parser(
        "tune",
        help="search kl_weight and the mask threshold with KerasTuner, scored on a never-reset stream",
        description="KerasTuner search of the CE/KL balance (kl_weight, log scale) and the mask "
        "threshold on a keyword task; trials are scored by stream_score (acc_p minus a cost per "
        "false alarm per hour) on a never-reset validation stream of other speakers. Resumable.",
    )
    p.add_argument("--task", choices=["kws", "fsdd"], default="kws")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--families", nargs="+", default=["gru"])
    p.add_argument("--units", nargs="+", type=int, default=[64])
    p.add_argument("--tuner", choices=["random", "bayesian"], default="random")
    p.add_argument("--train-segments", type=int, default=1000)
    p.add_argument("--eval-segments", type=int, default=400)
    p.add_argument("--directory", default="tuning")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=tune_command)

    p = commands.add_parser(
        "convert",
        help="convert a saved .keras model to a stateful TFLite Micro step model",
        description="Converts a .keras model (any backend; conversion runs on TensorFlow) to a "
        "per-frame TFLite (Micro) model whose recurrent state lives inside it (or, with --state "
        "external, is an extra input and output), checks that TFLite Micro can run every op, "
        "and prints flash, measured tensor arena, state bytes, ops and MACs per frame.",
    )
    p.add_argument("model", help="the .keras model")
    p.add_argument("--out", required=True, help="the .tflite file to write")
    p.add_argument(
        "--calibration",
        default=None,
        help="a .npy of (frames, features) of a continuous stream; needed for int8",
    )
    p.add_argument("--quantize", choices=["int8", "float"], default="int8")
    p.add_argument("--state", choices=["internal", "external"], default="internal")
    p.add_argument("--frames-per-step", type=int, default=1)
    p.add_argument(
        "--c-array", default=None, help="also write this .cc (and its .h) for a board"
    )
    p.add_argument("--name", default="g_model", help="C name of the array")
    p.set_defaults(run=convert_command)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
