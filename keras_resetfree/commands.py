"""What each `resetfree` command does, given its parsed arguments (`resetfree_cli.py` only parses).

Every command builds, trains, scores and converts through `keras_resetfree.recipes`.
"""

import json
import math
import os
import sys
import time
from pathlib import Path


def _progress():
    """Keras's progress verbosity for our bars: a live bar on a terminal, one line each in a log."""
    return 1 if sys.stdout.isatty() else 2


def _per_channel(args):
    """`--weight-scales` as `to_tflite`'s `per_channel`."""
    return args.weight_scales == "per-channel"


def _fail(message):
    raise SystemExit(f"error: {message}")


def _check_writable(path, option):
    """Fails before any work when `path` (a file or folder to write) cannot be written."""
    parent = Path(path).resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        _fail(f"{option} {path}: folder {parent} is not writable.")


def _load_spotter(path):
    from keras_resetfree import recipes

    try:
        return recipes.Spotter.load(path)
    except (FileNotFoundError, ValueError) as error:
        _fail(f"model {path}: {error}")


def _print_scores(scores, prefix=""):
    rates = [k for k in scores if k.startswith(f"{prefix}frr_at_")]
    print(
        f"segment accuracy {100 * scores[prefix + 'segment_accuracy']:.1f} %  acc_p "
        f"{100 * scores[prefix + 'acc_p']:.1f} %  acc_f {100 * scores[prefix + 'acc_f']:.1f} %  "
        f"noise confidence {scores[prefix + 'noise_confidence']:.2f}"
    )
    if prefix + "hit_rate" in scores:
        print(
            f"calibrated detector: hit rate {100 * scores[prefix + 'hit_rate']:.1f} %, false-reject "
            f"rate {100 * scores[prefix + 'false_reject_rate']:.1f} %, "
            f"{scores[prefix + 'false_alarms_per_hour']:.1f} false alarms per hour"
        )
    if rates:
        print(
            "false-reject rate at "
            + ", ".join(
                f"{k[len(prefix) + 7 :]} FA/h: {100 * scores[k]:.1f} %" for k in rates
            )
        )


def demo(args):
    """Synthesized keywords -> never-reset streams -> the recipe's training -> streaming
    evaluation (-> int8 sketch)."""
    import keras
    import numpy as np

    from keras_resetfree import datasets, recipes
    from keras_resetfree.recipes.tasks import KeywordTask, split_noise
    from keras_resetfree.streams import Augmentation

    if args.sketch:
        _check_writable(Path(args.sketch) / "x", "--sketch")
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    corpus = datasets.synthesize_keywords(
        args.words, args.per_word, seed=args.seed, verbose=_progress()
    )
    part = [
        datasets.speaker_partition(v, args.validation_percent, args.test_percent)
        for v in corpus.speakers
    ]
    splits = {
        name: corpus.subset([i for i, p in enumerate(part) if p == name])
        for name in ("train", "validation", "test")
    }
    empty = [name for name, split in splits.items() if not len(split)]
    if empty:
        _fail(
            f"{len(corpus)} utterances leave no voice for {', '.join(empty)}; raise --per-word "
            "or change --validation-percent / --test-percent."
        )
    try:
        noise, noise_name = (
            datasets.load_background_noise(),
            "Speech Commands _background_noise_",
        )
    except FileNotFoundError:
        noise, noise_name = None, "silence (no data folder found)"
    task = KeywordTask(
        splits,
        split_noise(noise),
        list(args.words),
        snr_db=(args.snr_min, args.snr_max),
        augmentation=Augmentation() if args.augment else Augmentation.none(),
        segments_per_epoch=args.train_segments,
        evaluation_segments=args.test_segments,
        mask=args.mask,
        seed=args.seed,
        verbose=_progress(),
    )
    print(
        f"backend {keras.backend.backend()} | {len(args.words)} keywords synthesized with espeak-ng: "
        f"{len(splits['train'])} utterances for training, {len(splits['validation'])} for "
        f"validation, {len(splits['test'])} from held-out voices | noise: {noise_name}"
    )
    if args.plot:
        from keras_resetfree import streams

        streams.plot_stream(
            streams.KeywordStream(
                splits["test"], noise=task.noise["test"], num_segments=8,
                snr_db=task.snr_db, seed=args.seed + 2, keep_waveform=True,
            ).build(),
            args.plot,
            title="test stream: waveform, MFCC, mask and labels",
        )  # fmt: skip
        print(f"plot of the stream: {args.plot}")
    config = recipes.RecipeConfig(
        words=list(args.words),
        unknown=False,
        silence=False,
        family=args.family,
        size=args.units,
        segments_per_epoch=args.train_segments,
        evaluation_segments=args.test_segments,
        max_epochs=args.epochs,
        patience=args.patience,
        learning_rate=args.learning_rate,
        kl_weight=args.kl_weight,
        window=args.window,
        target_false_alarms_per_hour=args.target_false_alarms,
        calibration_hours=args.calibration_hours,
        seed=args.seed,
    )
    spotter = recipes.train_spotter(config, task, verbose=2 if args.verbose else 0)
    print(f"data and training: {time.perf_counter() - start:.0f} s")
    test = task.evaluation_stream("test")
    streamed = recipes.stream_logits(spotter.model, test.features, chunk=args.chunk)
    print(
        f"never-reset test stream of held-out voices ({len(test) / test.frame_rate / 60:.1f} min, "
        f"{len(test.segments)} words, chunks of {args.chunk} frames):"
    )
    _print_scores(spotter.scores, "test_")
    whole = keras.ops.convert_to_numpy(
        spotter.model.predict(test.features[None], verbose=0)
    )[0]
    print(
        f"streamed vs whole-stream logits: max |difference| {np.abs(whole - streamed).max():.2e}"
    )
    if not np.isfinite(streamed).all():
        print("error: non-finite outputs on the stream", file=sys.stderr)
        return 1
    if args.sketch:
        _write_sketch(spotter, task, args.sketch, "int8", test)
    return 0


def _write_sketch(spotter, task, folder, quantize, test=None, per_channel=False):
    from keras_resetfree import export, features, recipes
    from keras_resetfree.recipes import deploy

    calibration = task.train_stream(0)
    test = test if test is not None else task.evaluation_stream("test")
    print(
        f"converting to {quantize} (calibrated on {len(calibration):,} frames of training "
        f"stream), then checking it in TFLite Micro on {len(test):,} test frames ...",
        flush=True,
    )
    conversion = deploy.convert_spotter(
        spotter, calibration, quantize, check=test, per_channel=per_channel
    )
    print("measuring the tensor arena ...", flush=True)
    report = export.inspect(conversion.data)
    mfcc = task.features or features.MFCC(task.sample_rate)
    written = deploy.write_spotter_sketch(spotter, conversion, folder, mfcc, report)
    print(
        f"{quantize} TFLite Micro model on the never-reset test stream: argmax agreement with "
        f"float {100 * conversion.agreement:.1f} % of informative frames "
        f"({100 * conversion.agreement_sure:.1f} % where float is at least "
        f"{100 * recipes.scoring.SURE:.0f} % sure); the calibrated detector's detections in "
        f"common with float {conversion.detections.shared} of "
        f"{conversion.detections.reference} ({quantize} alone: "
        f"{conversion.detections.got - conversion.detections.shared}); segment accuracy "
        f"{100 * conversion.scores['segment_accuracy']:.1f} % (float "
        f"{100 * spotter.scores['test_segment_accuracy']:.1f} %); flash {report.flash_bytes:,} B, "
        f"arena {report.arena_bytes:,} B, state {report.state_bytes} B, "
        f"{report.weight_scales} weights"
    )
    print(
        f"sketch written to {folder}: {len(written)} model files and the sketch sources; detector "
        f"threshold {spotter.detector.threshold:.4g}, smoothing {spotter.detector.smoothing} frames"
    )


def train(args):
    """Trains a keyword spotter from a config file and/or options; writes the spotter folder."""
    from keras_resetfree import recipes

    overrides = {
        "data": args.data,
        "words": args.words,
        "family": args.family,
        "size": args.size,
        "depth": args.depth,
        "front_end": args.front_end,
        "mfcc_coefficients": args.mfcc_coefficients,
        "max_epochs": args.max_epochs,
        "target_false_alarms_per_hour": args.target_false_alarms,
        "seed": args.seed,
    }
    try:
        if args.config:
            config = recipes.load_config(args.config, **overrides)
        else:
            config = recipes.RecipeConfig(
                **{k: v for k, v in overrides.items() if v is not None}
            )
    except (ValueError, FileNotFoundError) as error:
        _fail(f"{'--config ' + args.config + ': ' if args.config else ''}{error}")
    _check_writable(args.out, "--out")
    spotter = recipes.train_spotter(config, verbose=2 if args.verbose else _progress())
    spotter.save(args.out)
    _print_scores(spotter.scores, "test_")
    print(f"saved {args.out} (model.keras, spotter.json)")
    return 0


def calibrate(args):
    """Calibrates a spotter's detector for another false-alarm rate; rewrites its folder."""
    from keras_resetfree import recipes

    for low, high in args.snr or []:
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            _fail(f"--snr takes MIN MAX in dB, MIN <= MAX, got {low:g} {high:g}.")
    spotter = _load_spotter(args.model)
    _check_writable(args.model, "model")
    if args.target_false_alarms is not None and args.target_false_alarms < 0:
        _fail(f"--target-false-alarms must be >= 0, got {args.target_false_alarms}.")
    if args.hours is not None and args.hours <= 0:
        _fail(f"--hours must be > 0, got {args.hours}.")
    if args.snr:
        spotter.config.calibration_snr_db = [list(r) for r in args.snr]
    task = spotter.config.keyword_task(verbose=_progress())
    recipes.calibrate_spotter(
        spotter, task, args.target_false_alarms, args.hours, log=print
    )
    spotter.save(args.model)
    detector = spotter.detector
    print(
        f"detector for {spotter.config.target_false_alarms_per_hour:g} false alarms per hour "
        f"(on {spotter.scores['calibration_hours']:.2f} h of validation audio): threshold "
        f"{detector.threshold:.4g}, smoothing {detector.smoothing}; test stream:"
    )
    _print_scores(spotter.scores, "test_")
    return 0


def evaluate(args):
    """Scores a spotter folder on its task's never-reset test stream: the trade-off summary."""
    import numpy as np

    from keras_resetfree import recipes

    spotter = _load_spotter(args.model)
    config = spotter.config
    if args.data:
        config.data = args.data
    task = config.keyword_task(verbose=_progress())
    test = task.evaluation_stream("test", num_segments=args.segments)
    probs = recipes.probabilities(
        recipes.stream_logits(spotter.model, test.features, verbose=_progress())
    )
    scores = recipes.score(probs, test, spotter.detector)
    print(
        f"test stream: {len(test.segments)} utterances, {scores['hours']:.2f} h, never reset; "
        f"detector threshold {spotter.detector.threshold:.4g}, smoothing {spotter.detector.smoothing}"
    )
    _print_scores(scores)
    # Why it misses and where it fires: how sure it is of the keywords, and
    # what the stream held where each false alarm fired.
    detector = spotter.detector
    sources = recipes.false_alarm_sources(probs, test, detector)
    peaks = recipes.keyword_peaks(probs, test, detector.smoothing)
    print(
        "its false alarms fired on: "
        + ", ".join(f"{name} {count}" for name, count in sources.items())
    )
    if len(peaks):
        print(
            f"keywords whose own word's posterior reaches the threshold: "
            f"{100 * np.mean(peaks > detector.threshold):.1f} % (median peak "
            f"{np.median(peaks):.3f})"
        )
    result = {
        "test": scores,
        "false_alarm_sources": sources,
        "keyword_peaks": peaks.tolist(),
    }
    if args.false_alarm_hours:
        quiet = task.false_alarm_stream("test", args.false_alarm_hours)
        quiet_probs = recipes.probabilities(
            recipes.stream_logits(spotter.model, quiet.features, verbose=_progress())
        )
        found = recipes.scoring.detections(quiet_probs, quiet, spotter.detector)
        print(
            f"noise and unknown words only ({found.hours:.2f} h): {found.false_alarms} false alarms, "
            f"{found.false_alarms_per_hour:.2f} per hour"
        )
        result["false_alarm_stream"] = {
            "hours": found.hours,
            "false_alarms": found.false_alarms,
            "false_alarms_per_hour": found.false_alarms_per_hour,
        }
    if args.plot:
        curve = recipes.tradeoff(probs, test, spotter.detector.smoothing)
        recipes.plot_tradeoff({config.family: curve}, args.plot)
        print(f"trade-off plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0 if np.isfinite(probs).all() else 1


def tune(args):
    """KerasTuner search of kl_weight and the mask threshold on a keyword task."""
    import keras_tuner

    from keras_resetfree import tuning

    train_stream, validation, _, classes = tuning.keyword_task_streams(
        args.task, args.train_segments, args.eval_segments, args.seed
    )
    hypermodel = tuning.ResetFreeHyperModel(
        train_stream, validation, classes, families=args.families, units=args.units,
        epochs=args.epochs, seed=args.seed,
    )  # fmt: skip
    tuner_class = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
    }[args.tuner]
    try:
        tuner = tuner_class(
            hypermodel,
            objective=tuning.objective(),
            max_trials=args.trials,
            # KerasTuner takes a seed of 0 for "no seed" and draws a random one.
            seed=args.seed + 1,
            directory=args.directory,
            project_name=args.task,
            # Without --overwrite an interrupted search resumes where it stopped.
            overwrite=args.overwrite,
        )
    except (ValueError, KeyError, OSError) as error:  # json errors are ValueErrors
        _fail(
            f"--directory {args.directory}: cannot resume the search in it "
            f"({type(error).__name__}: {error}); pass --overwrite to start afresh."
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


def convert(args):
    """Converts a spotter folder or a .keras model to a stateful TFLite (Micro) step model."""
    import keras
    import numpy as np

    from keras_resetfree import export, recipes
    from keras_resetfree.recipes import deploy

    _check_writable(args.out, "--out")
    path = Path(args.model)
    normalization = None
    if args.qat < 0:
        _fail(f"--qat takes a number of epochs >= 0, got {args.qat}.")
    if args.qat and (args.quantize != "int8" or not path.is_dir()):
        _fail("--qat fine-tunes a spotter folder for --quantize int8.")
    if path.is_dir():
        spotter = _load_spotter(path)
        calibration = None
        if args.calibration is None and args.quantize != "float":
            task = spotter.config.keyword_task(verbose=_progress())
            calibration = task.train_stream(0)
        if args.calibration is not None:
            _fail(
                "a spotter folder calibrates on its own training stream; drop --calibration."
            )
        if args.qat:
            spotter = deploy.quantization_aware_spotter(
                spotter,
                task,
                args.qat,
                calibration,
                per_channel=_per_channel(args),
                verbose=1,
                log=print,
            )
            _print_scores(spotter.scores, "test_")
        print(f"converting to {args.quantize} ...", flush=True)
        conversion = deploy.convert_spotter(
            spotter,
            calibration,
            args.quantize,
            state=args.state,
            per_channel=_per_channel(args),
        )
        data, normalization = conversion.data, conversion.normalization
    else:
        try:
            model = recipes.spotter.load_keras_model(path)
        except (FileNotFoundError, ValueError) as error:
            _fail(f"model {path}: {error}")
        stream = None
        if args.calibration:
            stream = np.load(args.calibration)
            if (
                stream.ndim not in (2, 3)
                or stream.shape[-1] != model.inputs[0].shape[-1]
            ):
                _fail(
                    f"--calibration holds an array of shape {stream.shape}; the model takes "
                    f"(frames, {model.inputs[0].shape[-1]}) features."
                )
        try:
            data = export.to_tflite(
                model, stream, quantize=args.quantize,
                frames_per_step=args.frames_per_step, state=args.state,
                per_channel=_per_channel(args),
            )  # fmt: skip
        except ValueError as error:
            _fail(str(error))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} B)")
    if normalization is not None:
        mean = np.ravel(keras.ops.convert_to_numpy(normalization.mean))
        variance = np.ravel(keras.ops.convert_to_numpy(normalization.variance))
        stats = Path(args.out).with_suffix(".normalization.json")
        stats.write_text(
            json.dumps({"mean": mean.tolist(), "variance": variance.tolist()})
        )
        print(
            f"the model takes standardised features: (x - mean) / sqrt(variance), statistics in "
            f"{stats} (the sketch applies them in float)"
        )
    if args.c_array:
        cc, header = export.write_c_array(data, args.c_array, name=args.name)
        print(f"wrote {cc} and {header} (array {args.name})")
    print(export.inspect(data).summary())
    return 0


def sketch(args):
    """Writes the complete Arduino sketch folder for a spotter folder."""

    spotter = _load_spotter(args.model)
    _check_writable(Path(args.out) / "x", "--out")
    task = spotter.config.keyword_task()
    _write_sketch(
        spotter,
        task,
        args.out,
        args.quantize,
        per_channel=_per_channel(args),
    )
    return 0


def experiment(args):
    """The paper's protocol on one task: each family trained each way, scored never reset."""
    from keras_resetfree import experiment as protocol

    if args.out:
        _check_writable(args.out, "--out")
    protocol.run(
        args.task, args.families, args.methods, args.size, args.seed, out=args.out
    )
    return 0
