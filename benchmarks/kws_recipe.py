"""The keyword recipe measured as wake-word systems are: targets, ablation, sizes, data.

    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py recipe     # the default model
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py ablation   # what each augmentation is worth
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py sizes      # accuracy against int8 flash
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py data       # learning curve against data size
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py drift --families vanilla_rnn gru
                                     # never reset against a reset at every word, per family
    python benchmarks/kws_recipe.py labels   # the training labels of each mask, per SNR band
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py limits --load my_spotter
                                     # training vs held-out speakers, per SNR band, oracle resets
    KERAS_BACKEND=tensorflow python benchmarks/kws_recipe.py ensemble --load DIR DIR ...
                                     # several spotters' averaged posteriors against each alone

`recipe` trains the recipe's default (`keras_resetfree.recipes.RecipeConfig`)
on the speaker split of ../shared/data/speech_commands (12 labels), then on
the never-reset test stream of held-out speakers and held-out noise (at
least an hour, 0-20 dB SNR) prints segment accuracy, the calibrated
detector, the false-reject rate at 0.5 / 1 / 5 / 10 false alarms per hour,
false alarms on an hour of noise and unknown words only, and the trade-off
against a classic model (last-frame cross-entropy on clips, the same family
and size) run with an oracle reset at every utterance start; the wall
time of the whole recipe; and the model converted for the board (int8 with
per-channel and with per-tensor weight scales, int16x8) and run in TFLite
Micro on the test stream: agreement with float, segment accuracy, the
calibrated detector, flash and arena against the 32 KB / 16 KB budget. The other modes train with a smaller budget
(`--max-epochs`, `--segments`) and print one row per variant. Every run
writes JSON (and the recipe a trade-off PNG) to benchmarks/results/.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_resetfree import losses, recipes
from keras_resetfree.recipes.tasks import _clips
from resetfree_cli import parse_size

RESULTS = Path(__file__).parent / "results"
CURVE_RATES = (1, 2, 5, 10, 20, 50, 100)


def config_from(args, **changes):
    values = dict(
        family=args.family,
        size=args.size,
        depth=args.depth,
        front_end=args.front_end,
        max_epochs=args.max_epochs,
        patience=args.patience,
        segments_per_epoch=args.segments,
        seed=args.seed,
        mask=args.mask,
        dropout=args.dropout,
        kl_weight=args.kl_weight,
        peak_weight=args.peak_weight,
        weight_average=args.weight_average,
        train_snr_db=args.train_snr_db,
        unknown_share=args.unknown_share,
        mfcc_coefficients=args.mfcc_coefficients,
    )
    if args.window:
        values["window"] = args.window
    if args.learning_rate:
        values["learning_rate"] = args.learning_rate
    if args.no_augment:
        values["augmentation"] = "none"
    elif args.gain_db:
        values["augmentation"] = {"gain_db": args.gain_db}
    values.update(changes)
    return recipes.RecipeConfig(**values)


def train_classic(config, task, epochs=40):
    """The classic baseline: one clip at a time from a zero state, last-frame cross-entropy;
    clips cut (50 frames) from four fresh training streams, the best of `epochs` on validation clips."""
    keras.utils.set_random_seed(config.seed)
    pieces = [_clips(task.train_stream(e), 50) for e in range(4)]
    x = np.concatenate([p[0] for p in pieces])
    y = np.concatenate([p[1] for p in pieces])
    validation = _clips(task.evaluation_stream("validation"), 50)
    model = recipes.build_for_task(config, task)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=losses.LastFrameCrossEntropy(from_logits=True),
    )
    stop = keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True)
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        validation_data=validation,
        callbacks=[stop],
        verbose=0,
    )
    return model


def row(name, scores):
    return (
        f"| {name} | {100 * scores['test_segment_accuracy']:.1f} % | {100 * scores['test_acc_p']:.1f} % "
        f"| {100 * scores['test_frr_at_5']:.1f} % | {scores['epochs']} | {scores['train_seconds']:.0f} s |"
    )


HEADER = "| variant | segment accuracy | acc_p | FRR at 5 FA/h | epochs | training |\n|---|---|---|---|---|---|"


def recipe(args):
    start = time.perf_counter()
    config = config_from(args, evaluation_segments=args.test_segments)
    task = config.keyword_task()
    spotter = recipes.train_spotter(config, task, verbose=2)
    recipe_seconds = time.perf_counter() - start
    test = task.evaluation_stream("test")
    probs = recipes.probabilities(recipes.stream_logits(spotter.model, test.features))
    scores = recipes.score(probs, test, spotter.detector)
    quiet = task.false_alarm_stream("test", args.false_alarm_hours)
    quiet_probs = recipes.probabilities(
        recipes.stream_logits(spotter.model, quiet.features)
    )
    quiet_found = recipes.scoring.detections(quiet_probs, quiet, spotter.detector)
    reset_free = recipes.tradeoff(probs, test, spotter.detector.smoothing)
    classic = train_classic(config, task)
    oracle = recipes.stream_logits(
        classic, test.features, reset_frames=test.segments[:, 0]
    )
    classic_curve = recipes.tradeoff(
        recipes.probabilities(oracle), test, spotter.detector.smoothing
    )
    never = recipes.stream_logits(classic, test.features)
    classic_never = recipes.tradeoff(
        recipes.probabilities(never), test, spotter.detector.smoothing
    )
    params = spotter.model.count_params()
    print(
        f"\n{config.family} size {config.size} depth {config.depth}"
        f"{f' front end {config.front_end}' if config.front_end else ''}: {params:,} parameters"
    )
    print(
        f"test stream: {len(test.segments)} utterances of held-out speakers, {scores['hours']:.2f} h, "
        "held-out noise at 0-20 dB SNR, never reset"
    )
    print(
        f"segment accuracy (12 labels) {100 * scores['segment_accuracy']:.1f} %, acc_p "
        f"{100 * scores['acc_p']:.1f} %, acc_f {100 * scores['acc_f']:.1f} %"
    )
    print(
        f"calibrated detector (validation, target {config.target_false_alarms_per_hour:g} FA/h): "
        f"threshold {spotter.detector.threshold:.4g}, smoothing {spotter.detector.smoothing}: "
        f"false-reject rate {100 * scores['false_reject_rate']:.1f} % at "
        f"{scores['false_alarms_per_hour']:.1f} false alarms per hour"
    )
    print(
        f"noise and unknown words only, {quiet_found.hours:.2f} h: {quiet_found.false_alarms} false "
        f"alarms ({quiet_found.false_alarms_per_hour:.2f} per hour)"
    )
    print(
        "\n| false alarms per hour | "
        + " | ".join(f"{r:g}" for r in CURVE_RATES)
        + " |"
    )
    print("|---" * (len(CURVE_RATES) + 1) + "|")
    curves = {
        "reset-free, never reset": reset_free,
        "classic, oracle resets": classic_curve,
        "classic, no reset": classic_never,
    }
    for name, curve in curves.items():
        cells = " | ".join(
            f"{100 * recipes.frr_at(curve, r):.1f} %" for r in CURVE_RATES
        )
        print(f"| {name}: false-reject rate | {cells} |")
    below = all(
        recipes.frr_at(reset_free, r) <= recipes.frr_at(classic_curve, r)
        for r in CURVE_RATES
    )
    print(
        f"\nreset-free at or below classic-with-oracle-resets at every rate 1-100 FA/h: {below}"
    )
    print(
        f"whole recipe (data, training, calibration, scoring): {recipe_seconds:.0f} s"
    )
    if args.save:  # before converting: a failed conversion keeps the trained spotter
        spotter.save(args.save)
    boards = on_the_board(spotter, task, test)
    RESULTS.mkdir(exist_ok=True)
    name = args.name or ("kws_recipe_no_augment" if args.no_augment else "kws_recipe")
    recipes.plot_tradeoff(
        curves,
        RESULTS / f"{name}_tradeoff.png",
        title="held-out speakers, never reset",
    )
    out = {
        "config": config.to_dict(),
        "parameters": params,
        "detector": dataclasses.asdict(spotter.detector),
        "test": scores,
        "false_alarm_stream": {
            "hours": quiet_found.hours,
            "false_alarms": quiet_found.false_alarms,
        },
        "curves": {k: [c.tolist() for c in v] for k, v in curves.items()},
        "recipe_seconds": recipe_seconds,
        "train": spotter.scores,
        "converted": boards,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1, default=float))


def on_the_board(spotter, task, test):
    """The spotter converted as `resetfree convert` does (int8 with per-channel and
    per-tensor weight scales, int16x8 per-tensor), run in TFLite Micro on the test
    stream with the calibrated detector: agreement, accuracy, flash, arena, budget."""
    from keras_resetfree import export
    from keras_resetfree.recipes import deploy

    first = task.train_stream(0)
    print(
        "\n| converted | argmax agreement with float | segment accuracy | calibrated FRR "
        "| flash | arena | fits 32 KB / 16 KB |\n|---|---|---|---|---|---|---|"
    )
    results = {}
    for quantize, per_channel in (("int8", True), ("int8", False), ("int16x8", False)):
        name = f"{quantize}, {'per-channel' if per_channel else 'per-tensor'} weights"
        try:
            conversion = deploy.convert_spotter(
                spotter, first, quantize, check=test, per_channel=per_channel
            )
        except export.UnsupportedOpError as error:  # e.g. spiking layers in int16x8
            results[name] = {"not_converted": str(error)}
            print(
                f"| {name} | not converted: {error} | - | - | - | - | no |", flush=True
            )
            continue
        report = export.inspect(conversion.data)
        fits = (
            report.flash_bytes <= 32 * 1024 and (report.arena_bytes or 0) <= 16 * 1024
        )
        results[name] = {
            "agreement": conversion.agreement,
            "segment_accuracy": conversion.scores["segment_accuracy"],
            "false_reject_rate": conversion.scores["false_reject_rate"],
            "false_alarms_per_hour": conversion.scores["false_alarms_per_hour"],
            "flash_bytes": report.flash_bytes,
            "arena_bytes": report.arena_bytes,
            "fits": fits,
        }
        r = results[name]
        print(
            f"| {name} | {100 * r['agreement']:.2f} % | {100 * r['segment_accuracy']:.1f} % "
            f"| {100 * r['false_reject_rate']:.1f} % at {r['false_alarms_per_hour']:.1f} FA/h "
            f"| {r['flash_bytes']:,} B | {r['arena_bytes']:,} B | {'yes' if fits else 'no'} |",
            flush=True,
        )
    return results


def ablation(args):
    variants = {
        "no augmentation": ({"augmentation": "none"}, None),
        "all (the recipe)": ({}, None),
        "all but time shift": ({"augmentation": {"time_shift": 0.0}}, None),
        "all but speed": ({"augmentation": {"speed": [1.0, 1.0]}}, None),
        "all but gain": ({"augmentation": {"gain_db": [0.0, 0.0]}}, None),
        "all but SpecAugment": (
            {"augmentation": {"time_masks": 0, "frequency_masks": 0}},
            None,
        ),
        "all, SNR 5-20 dB (not 0-20)": ({}, (5.0, 20.0)),
    }
    print(HEADER)
    results = {}
    for name, (changes, train_snr) in variants.items():
        config = config_from(args, **changes)
        task = config.keyword_task()
        # Training streams only: validation and test stay at 0-20 dB.
        task.train_snr_db = train_snr
        spotter = recipes.train_spotter(config, task, verbose=0, log=lambda _: None)
        results[name] = spotter.scores
        print(row(name, spotter.scores), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kws_ablation.json").write_text(
        json.dumps(results, indent=1, default=float)
    )


def sizes(args):
    from keras_resetfree import export
    from keras_resetfree.recipes import deploy

    print(
        "| family | size | depth | parameters | int8 flash | arena | fits 32 KB / 16 KB | segment accuracy "
        "| FRR at 5 FA/h | int8 agreement |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    results = []
    for family in args.families:
        for size in args.sizes:
            for depth in args.depths:
                config = config_from(args, family=family, size=size, depth=depth)
                task = config.keyword_task()
                spotter = recipes.train_spotter(
                    config, task, verbose=0, log=lambda _: None
                )
                conversion = deploy.convert_spotter(
                    spotter,
                    task.train_stream(0),
                    "int8",
                    check=task.evaluation_stream("test"),
                )
                report = export.inspect(conversion.data)
                fits = (
                    report.flash_bytes <= 32 * 1024 and report.arena_bytes <= 16 * 1024
                )
                s = spotter.scores
                print(
                    f"| {family} | {size} | {depth} | {spotter.model.count_params():,} | "
                    f"{report.flash_bytes:,} B | {report.arena_bytes:,} B | {'yes' if fits else 'no'} | "
                    f"{100 * s['test_segment_accuracy']:.1f} % | {100 * s['test_frr_at_5']:.1f} % | "
                    f"{100 * conversion.agreement:.1f} % |",
                    flush=True,
                )
                results.append(
                    {"family": family, "size": size, "depth": depth, "flash": report.flash_bytes,
                     "arena": report.arena_bytes, "agreement": conversion.agreement, **s}
                )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kws_sizes.json").write_text(
        json.dumps(results, indent=1, default=float)
    )


def drift(args):
    """Whether a family fails to learn the words or fails to run never reset: segment accuracy
    on the never-reset test stream against the same model reset at every utterance start, and
    how saturated its state is on the never-reset stream."""
    from keras_resetfree import Streamer

    print(
        "| family | parameters | epochs | segment accuracy, never reset | reset at every "
        "utterance | state entries beyond 0.95 of their layer's largest |\n|---|---|---|---|---|---|"
    )
    results = {}
    for family in args.families:
        config = config_from(args, family=family)
        task = config.keyword_task()
        spotter = recipes.train_spotter(config, task, verbose=0, log=lambda _: None)
        test = task.evaluation_stream("test")
        reset = recipes.probabilities(
            recipes.stream_logits(spotter.model, test.features, test.segments[:, 0])
        )
        reset_accuracy = float(
            np.mean(recipes.segment_predictions(reset, test, spotter.detector.silence_threshold)
                    == test.segments[:, 2])
        )  # fmt: skip
        streamer = Streamer(spotter.model)
        saturated, total = 0, 0
        for start in range(0, len(test), 250):
            streamer.step(test.features[None, start : start + 250])
            for states in streamer.state:
                for state in states:
                    largest = np.abs(state).max() or 1.0
                    saturated += int((np.abs(state) > 0.95 * largest).sum())
                    total += state.size
        s = spotter.scores
        results[family] = {**s, "reset_segment_accuracy": reset_accuracy,
                           "saturated_fraction": saturated / total}  # fmt: skip
        print(
            f"| {family} | {spotter.model.count_params():,} | {s['epochs']} | "
            f"{100 * s['test_segment_accuracy']:.1f} % | {100 * reset_accuracy:.1f} % | "
            f"{100 * saturated / total:.1f} % |",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kws_drift.json").write_text(
        json.dumps(results, indent=1, default=float)
    )


def limits(args):
    """What limits a spotter's accuracy, told apart on one model: never-reset streams (no
    augmentation, 0-20 dB) of the speakers it trained on, the validation speakers and the
    test speakers; the test speakers per SNR band, almost clean, and with the whole input
    20 or 40 dB quieter or 10 dB louder (another microphone's gain); and the test stream
    with an oracle reset at every utterance start."""
    if args.load:
        if len(args.load) != 1:
            raise SystemExit(f"limits takes one spotter folder, got {len(args.load)}.")
        spotter = recipes.Spotter.load(args.load[0])
        config = spotter.config
    else:
        config = config_from(args)
        spotter = recipes.train_spotter(config, config.keyword_task(), verbose=2)
        if args.save:
            spotter.save(args.save)
    task = dataclasses.replace(
        config.keyword_task(), evaluation_segments=args.test_segments
    )
    print(
        f"{config.family} size {config.size} depth {config.depth}, seed {config.seed}: "
        f"{spotter.model.count_params():,} parameters; {args.test_segments} utterances per stream\n"
        "\n| stream (never reset unless said) | segment accuracy | acc_p | FRR of the calibrated "
        "detector |\n|---|---|---|---|"
    )
    variants = {
        f"{split} speakers, {task.snr_db[0]:g}-{task.snr_db[1]:g} dB": (task, split)
        for split in ("train", "validation", "test")
    }
    for low, high in ((0, 5), (5, 10), (10, 15), (15, 20)):
        variants[f"test speakers, {low}-{high} dB"] = (
            dataclasses.replace(task, snr_db=(low, high)),
            "test",
        )
    # Speech at the level of the 20 dB streams, with the noise 20 dB lower
    # (`streams.KeywordStream` lowers the noise above 20 dB).
    variants["test speakers, 40 dB (almost clean)"] = (
        dataclasses.replace(task, snr_db=(40, 40)),
        "test",
    )
    # The whole input (noise and speech) quieter or louder, as another
    # microphone's gain or distance would make it.
    for gain in (-20, -40, 10):
        variants[
            f"test speakers, input {abs(gain)} dB {'quieter' if gain < 0 else 'louder'}"
        ] = (
            dataclasses.replace(task, noise_rms=task.noise_rms * 10.0 ** (gain / 20.0)),
            "test",
        )
    variants["test speakers, reset at every utterance (oracle)"] = (task, "test")
    results, test, test_probs = {}, None, None
    for name, (variant, split) in variants.items():
        # The oracle row runs the 0-20 dB test stream (built above) again.
        oracle = "oracle" in name
        stream = test if oracle else variant.evaluation_stream(split)
        resets = stream.segments[:, 0] if oracle else ()
        probs = recipes.probabilities(
            recipes.stream_logits(spotter.model, stream.features, reset_frames=resets)
        )
        if variant is task and split == "test" and not oracle:
            test, test_probs = stream, probs
        s = recipes.score(probs, stream, spotter.detector, curve=False)
        results[name] = s
        print(
            f"| {name} | {100 * s['segment_accuracy']:.1f} % | {100 * s['acc_p']:.1f} % | "
            f"{100 * s['false_reject_rate']:.1f} % at {s['false_alarms_per_hour']:.1f} FA/h |",
            flush=True,
        )
    # Which labels the test speakers' utterances (0-20 dB, never reset) are taken for.
    predicted = recipes.segment_predictions(
        test_probs, test, spotter.detector.silence_threshold
    )
    truth = test.segments[:, 2]
    names = spotter.label_names
    print(
        "\n| test utterances of | utterances | recognised | most often taken for |"
        "\n|---|---|---|---|"
    )
    confusion = {}
    for label, word in enumerate(names):
        got = predicted[truth == label]
        if not len(got):
            continue
        wrong = got[got != label]
        counts = np.bincount(wrong, minlength=len(names))
        top = np.argsort(counts)[::-1][:2]
        taken = ", ".join(
            f"{names[t]} {100 * counts[t] / len(got):.0f} %" for t in top if counts[t]
        )
        confusion[word] = np.bincount(got, minlength=len(names)).tolist()
        print(
            f"| {word} | {len(got)} | {100 * np.mean(got == label):.1f} % | {taken or '-'} |"
        )
    results["test confusion (rows: truth, columns: predicted)"] = confusion
    # How sure the model is of the keywords, and where its false alarms fire.
    detector = spotter.detector
    peaks = recipes.keyword_peaks(test_probs, test, detector.smoothing)
    quantiles = np.quantile(peaks, [0.1, 0.25, 0.5, 0.75, 0.9])
    print(
        f"\nthe own word's highest posterior (smoothing {detector.smoothing}) over the "
        f"{len(peaks)} test keyword utterances, 10 / 25 / 50 / 75 / 90 %: "
        + " / ".join(f"{q:.3f}" for q in quantiles)
    )
    print(
        "\n| threshold | keywords whose own word reaches it | hits | false alarms on: "
        + " | ".join(recipes.scoring.FALSE_ALARM_SOURCES)
        + " | false alarms per hour |\n|---"
        + "|---" * (len(recipes.scoring.FALSE_ALARM_SOURCES) + 4)
        + "|"
    )
    sources = {}
    thresholds = (0.5, 0.7, 0.9, 0.95, detector.threshold)
    for i, threshold in enumerate(thresholds):
        chosen = dataclasses.replace(detector, threshold=float(threshold))
        found = recipes.scoring.detections(test_probs, test, chosen)
        counts = recipes.false_alarm_sources(test_probs, test, chosen)
        sources[f"{threshold:g}"] = {"hits": found.hits, **counts}
        calibrated = " (calibrated)" if i == len(thresholds) - 1 else ""
        print(
            f"| {threshold:.4g}{calibrated} | {100 * np.mean(peaks > threshold):.1f} % | "
            f"{found.hits} | "
            + " | ".join(str(n) for n in counts.values())
            + f" | {found.false_alarms_per_hour:.1f} |"
        )
    results["test keyword peaks (quantiles 10/25/50/75/90 %)"] = quantiles.tolist()
    results["test false alarm sources per threshold"] = sources
    RESULTS.mkdir(exist_ok=True)
    name = args.name or "kws_limits"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=float))


def ensemble(args):
    """How much more several trained spotters recognise together than each alone: each
    one's scores, and those of their averaged posteriors (as many times the flash), on the
    first one's never-reset test stream. Capacity that costs no data."""
    if not args.load or len(args.load) < 2:
        raise SystemExit(
            "ensemble needs two or more spotter folders: --load DIR DIR ..."
        )
    members = [recipes.Spotter.load(folder) for folder in args.load]
    first = members[0]
    for folder, member in zip(args.load, members):
        if member.label_names != first.label_names:
            raise SystemExit(
                f"{folder} has labels {member.label_names}, {args.load[0]} "
                f"{first.label_names}: an ensemble needs the same labels."
            )
    task = dataclasses.replace(
        first.config.keyword_task(), evaluation_segments=args.test_segments
    )
    test = task.evaluation_stream("test")
    print(
        f"test stream of {args.load[0]} (seed {first.config.seed}): {args.test_segments} "
        f"utterances, {len(test) / test.frame_rate / 3600:.2f} h, never reset; trade-off "
        f"curves at smoothing {first.detector.smoothing}; every row with the same detector, "
        f"silence where no label's mean posterior reaches 2 / {len(first.label_names)} "
        "(not calibrated)\n"
        "\n| spotter | parameters | segment accuracy | FRR at 1 / 5 / 10 FA/h |\n|---|---|---|---|"
    )
    detector = recipes.Detector(smoothing=first.detector.smoothing)
    results, probs = {}, []
    for folder, member in zip(args.load, members):
        probs.append(
            recipes.probabilities(recipes.stream_logits(member.model, test.features))
        )
        results[folder] = recipes.score(probs[-1], test, detector)
        params = f"{member.model.count_params():,}"
        print(ensemble_row(folder, params, results[folder]), flush=True)
    name = f"average of the {len(members)}"
    results[name] = recipes.score(np.mean(probs, axis=0), test, detector)
    params = f"{sum(m.model.count_params() for m in members):,}"
    print(ensemble_row(name, params, results[name]))
    singles = [results[folder]["segment_accuracy"] for folder in args.load]
    print(
        f"\nthe average against the mean of its members: segment accuracy "
        f"{100 * (results[name]['segment_accuracy'] - np.mean(singles)):+.1f} points"
    )
    RESULTS.mkdir(exist_ok=True)
    out = args.name or "kws_ensemble"
    (RESULTS / f"{out}.json").write_text(json.dumps(results, indent=1, default=float))


def ensemble_row(name, parameters, scores):
    rates = " / ".join(f"{100 * scores[f'frr_at_{r:g}']:.1f}" for r in (1, 5, 10))
    return f"| {name} | {parameters} | {100 * scores['segment_accuracy']:.1f} % | {rates} % |"


def labels(args):
    """How each mask labels the training utterances against the `"speech"` mask (speech in
    the clean clip, and the 0.16 s after it), per SNR band: the share of an utterance's
    frames it marks, the speech mask's frames it misses (trained towards uniform) and its
    informative frames outside the speech mask (trained as the word)."""
    print(
        "| SNR | mask | utterance frames marked informative | speech-mask frames "
        "missed | informative frames outside the speech mask |\n|---|---|---|---|---|"
    )
    results = {}
    task = config_from(args).keyword_task()
    for low, high in ((0, 5), (5, 10), (10, 15), (15, 20)):
        task.train_snr_db = (low, high)
        built = {}
        for mask in ("speech", "temporal_intensity", "energy"):
            task.mask = mask
            built[mask] = task.train_stream(0, args.segments)
        speech = built["speech"]
        inside = np.zeros(len(speech), bool)
        for start, end, label in speech.segments:
            if label not in task.noise_classes:
                inside[start:end] = True
        clean = speech.mask[inside] == 1
        for mask in ("temporal_intensity", "energy"):
            marked = built[mask].mask[inside] == 1
            row = {
                "marked": float(marked.mean()),
                "missed": float((clean & ~marked).sum() / clean.sum()),
                "without_speech": float((marked & ~clean).sum() / max(marked.sum(), 1)),
            }
            results[f"{low}-{high} dB {mask}"] = row
            print(
                f"| {low}-{high} dB | {mask} | {100 * row['marked']:.1f} % | "
                f"{100 * row['missed']:.1f} % | {100 * row['without_speech']:.1f} % |",
                flush=True,
            )
        results[f"{low}-{high} dB speech"] = {"marked": float(clean.mean())}
        print(f"| {low}-{high} dB | speech | {100 * clean.mean():.1f} % | - | - |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kws_labels.json").write_text(json.dumps(results, indent=1))


def data(args):
    print(HEADER)
    results = {}
    for fraction in args.fractions:
        config = config_from(args, evaluation_segments=args.test_segments)
        task = config.keyword_task()
        train = task.splits["train"]
        speakers = sorted(set(train.speakers))
        keep = set(
            np.random.default_rng(0).permutation(speakers)[
                : max(1, int(fraction * len(speakers)))
            ]
        )
        task.splits["train"] = train.subset(
            [i for i, s in enumerate(train.speakers) if s in keep]
        )
        spotter = recipes.train_spotter(config, task, verbose=0, log=lambda _: None)
        name = (
            f"{fraction:.0%} of training speakers ({len(task.splits['train'])} clips)"
        )
        results[name] = spotter.scores
        print(row(name, spotter.scores), flush=True)
    RESULTS.mkdir(exist_ok=True)
    name = args.name or "kws_data"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=float))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "mode",
        choices=[
            "recipe",
            "ablation",
            "sizes",
            "data",
            "drift",
            "labels",
            "limits",
            "ensemble",
        ],
    )
    default = recipes.RecipeConfig()
    parser.add_argument("--family", default=default.family, choices=recipes.FAMILIES)
    parser.add_argument("--size", type=parse_size, default=default.size)
    parser.add_argument("--depth", type=int, default=default.depth)
    parser.add_argument(
        "--front-end",
        nargs="+",
        type=int,
        metavar="N",
        default=default.front_end,
        help="FILTERS KERNEL [LAYERS]: causal convolutions over time before the "
        "recurrent layers",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=default.dropout,
        help="Dropout rate after each recurrent layer",
    )
    parser.add_argument(
        "--kl-weight",
        type=float,
        default=default.kl_weight,
        help="weight of the KL-to-uniform term on noise frames (ResetFreeLoss)",
    )
    parser.add_argument(
        "--peak-weight",
        type=float,
        default=default.peak_weight,
        help="weight of ResetFreeLoss's max-pooling term (each word's best frame)",
    )
    parser.add_argument(
        "--weight-average",
        type=float,
        default=default.weight_average,
        help="momentum of a moving average of the weights, 0 for none",
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="default: the recipe's (recipe) or 20",
    )
    parser.add_argument("--patience", type=int, default=default.patience)
    parser.add_argument(
        "--segments",
        type=int,
        default=None,
        help="per epoch; default: the recipe's or 2000",
    )
    parser.add_argument(
        "--test-segments",
        type=int,
        default=None,
        help="utterances in the test stream; default 2000 (recipe: at least an hour), 1000 otherwise",
    )
    parser.add_argument("--false-alarm-hours", type=float, default=1.0)
    parser.add_argument(
        "--families", nargs="+", default=["gru"], choices=recipes.FAMILIES
    )
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=["small", "base"]
    )
    parser.add_argument("--depths", nargs="+", type=int, default=[1])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    parser.add_argument(
        "--save",
        default=None,
        help="recipe and limits modes: also write the spotter folder",
    )
    parser.add_argument(
        "--load",
        nargs="+",
        default=None,
        help="limits mode: a spotter folder (--save, resetfree train) instead of training "
        "one; ensemble mode: the spotters to average",
    )
    parser.add_argument("--no-augment", action="store_true", help="no augmentation")
    parser.add_argument(
        "--gain-db",
        nargs=2,
        type=float,
        default=None,
        metavar=("MIN", "MAX"),
        help="gain range of each training block, dB (default: the recipe's, -10 10)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="recipe and data modes: results file name (default kws_recipe[_no_augment], kws_data)",
    )
    parser.add_argument(
        "--window", type=int, default=None, help="training window, frames"
    )
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--mask",
        default=default.mask,
        choices=recipes.MASKS,
        help="what labels the training streams' informative frames",
    )
    parser.add_argument(
        "--mfcc-coefficients",
        type=int,
        default=default.mfcc_coefficients,
        help="MFCC coefficients per frame, of 40 mel bins",
    )
    parser.add_argument(
        "--train-snr-db",
        nargs=2,
        type=float,
        default=default.train_snr_db,
        metavar=("MIN", "MAX"),
        help="SNR range of the training streams (default: the evaluation streams', 0-20 dB)",
    )
    parser.add_argument(
        "--unknown-share",
        type=float,
        default=default.unknown_share,
        help="share of _unknown_ utterances in the training streams (default: the clips')",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quick = args.mode != "recipe"
    if args.max_epochs is None:
        args.max_epochs = 20 if quick else default.max_epochs
    if args.test_segments is None:
        args.test_segments = 1000 if quick else 2000
    if args.segments is None:
        args.segments = 2000 if quick else default.segments_per_epoch
    modes = {
        "recipe": recipe,
        "ablation": ablation,
        "sizes": sizes,
        "data": data,
        "drift": drift,
        "labels": labels,
        "limits": limits,
        "ensemble": ensemble,
    }
    modes[args.mode](args)


if __name__ == "__main__":
    main()
