"""int8 against float per family on the 12-label keyword model: post-training, quantization-aware
state, and int16x8.

    KERAS_BACKEND=tensorflow python benchmarks/int8_families.py [--families gru lstm] [--max-epochs N]
    KERAS_BACKEND=tensorflow python benchmarks/int8_families.py --spotter FOLDER [--qat-epochs N]
    python benchmarks/int8_families.py --report benchmarks/results/int8_families.json

For each family, trains the keyword recipe's model (`recipes.RecipeConfig`,
12 labels, speaker split of ../shared/data/speech_commands), calibrates its
detector, then converts it to TFLite Micro three ways and runs each on the
never-reset test stream (held-out speakers and noise) with `MicroStepper`:

- PTQ int8: post-training calibration on the first training stream;
- QAT int8 (VanillaRNN, GRU, LSTM, SSM): `recipes.deploy.quantization_aware_spotter`
  (`export.quantization_aware`: weights, activations and state on their
  8-bit grids, weights per tensor as the spotter converts them), fine-tuned
  `--qat-epochs` epochs, detector calibrated again, then converted;
- int16x8: int8 weights, int16 activations and state (not spiking: TFLite has
  no 16x8 GREATER).

Prints, per variant: argmax agreement on informative frames with the float
model before any fine-tuning and with the variant's own float model (for QAT
the fine-tuned one: do training and converter agree?), segment accuracy, and
the argmax agreement of TFLite's own interpreter (optimized kernels) with
TFLite Micro on the same converted model (how far LSB-level differences
between two int8 runtimes carry a never-reset stream: the ceiling of any
frame-level agreement with a model other than the one on the board),
the false-reject rate and false alarms per hour of the calibrated detector,
beside the float model's, and each converted model's flash and arena. A
second table says what the frames that disagree are: agreement with the
variant's own float model on the frames where that model is at least 50 %
sure of its top label, the agreement of that float model's own logits rounded
to the converted model's output grid (what the output's 8 or 16 bits alone
allow), and the calibrated detector's decisions that the converted model
shares with its float model (same word, within 5 frames). Each
int8 and int16x8 variant is converted twice: with TFLite's per-channel weight
scales and with one scale per weight tensor (`to_tflite(per_channel=False)`).
Writes benchmarks/results/int8_families.json (`--results`). With `--spotter`
(a folder of `resetfree train` or `kws_recipe.py recipe --save`), measures
that trained spotter instead of training one per family.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from keras_resetfree import export, recipes
from keras_resetfree.recipes import deploy
from resetfree_cli import parse_size

RESULTS = Path(__file__).parent / "results"
QAT_FAMILIES = ("vanilla_rnn", "gru", "lstm", "ssm")


def lite_logits(data, features):
    """The converted step model run frame by frame in TFLite's own interpreter (its
    optimized kernels, not TFLite Micro's), dequantized."""
    from keras_resetfree.export.ops import _interpreter

    interpreter = _interpreter(data)
    interpreter.allocate_tensors()
    (source,), (target,) = (
        interpreter.get_input_details(),
        interpreter.get_output_details(),
    )
    (in_scale, in_zero), (out_scale, out_zero) = (
        source["quantization"],
        target["quantization"],
    )
    limits = np.iinfo(source["dtype"])
    outputs = []
    for frame in np.asarray(features, "float32"):
        q = np.round(frame / in_scale) + in_zero
        q = np.clip(q, limits.min, limits.max).astype(source["dtype"])
        interpreter.set_tensor(source["index"], q.reshape(source["shape"]))
        interpreter.invoke()
        value = interpreter.get_tensor(target["index"]).astype("float32")
        outputs.append((value.reshape(-1) - out_zero) * out_scale)
    return np.stack(outputs)


def on_output_grid(logits, output):
    """`logits` rounded to a converted model's output grid (`export.inspect(...).output`):
    what the output's bits alone allow, every other tensor in float."""
    if not output.get("scale"):
        return np.asarray(logits, "float32")
    limits = np.iinfo(np.dtype(output["dtype"]))
    scale, zero = output["scale"], output["zero_point"]
    q = np.clip(np.round(np.asarray(logits) / scale) + zero, limits.min, limits.max)
    return ((q - zero) * scale).astype("float32")


def measure(spotter, conversion, reference, test):
    report = export.inspect(conversion.data)
    features = deploy.standardize(conversion.normalization, test.features)
    micro = export.MicroStepper(conversion.data).run(features)
    # Two int8 runtimes of the same model: how far apart LSB-level kernel
    # differences (rounding of requantization, LOGISTIC/TANH) carry a stream.
    lite = lite_logits(conversion.data, features)
    micro_probs = recipes.probabilities(micro)
    scores = recipes.score(micro_probs, test, spotter.detector, curve=False)
    own = recipes.stream_logits(spotter.model, test.features)
    own_probs = recipes.probabilities(own)
    shared = recipes.scoring.shared_detections(
        own_probs, micro_probs, test, spotter.detector
    )
    return {
        "agreement_with_float": recipes.scoring.agreement(reference, micro, test),
        "agreement_with_own_float": recipes.scoring.agreement(own, micro, test),
        "agreement_sure_with_own_float": recipes.scoring.agreement(
            own, micro, test, min_probability=recipes.scoring.SURE
        ),
        "sure_frames": float(
            np.mean(
                own_probs.max(-1)[np.asarray(test.labels) != test.noise_label]
                >= recipes.scoring.SURE
            )
        ),
        "output_grid_agreement": recipes.scoring.agreement(
            own, on_output_grid(own, report.output), test
        ),
        "detections_float": shared.reference,
        "detections_converted": shared.got,
        "detections_shared": shared.shared,
        "agreement_tflite_with_micro": recipes.scoring.agreement(lite, micro, test),
        "segment_accuracy": scores["segment_accuracy"],
        "false_reject_rate": scores["false_reject_rate"],
        "false_alarms_per_hour": scores["false_alarms_per_hour"],
        "flash_bytes": report.flash_bytes,
        "arena_bytes": report.arena_bytes,
    }


def row(family, variant, r):
    def size(key):
        return "-" if r.get(key) is None else f"{r[key]:,} B"

    def percent(key):
        return "-" if r.get(key) is None else f"{100 * r[key]:.2f} %"

    return (
        f"| {family} | {variant} | {percent('agreement_with_float')} | "
        f"{percent('agreement_with_own_float')} | "
        f"{percent('agreement_tflite_with_micro')} | {100 * r['segment_accuracy']:.1f} % | "
        f"{100 * r['false_reject_rate']:.1f} % at {r['false_alarms_per_hour']:.1f} FA/h | "
        f"{size('flash_bytes')} | {size('arena_bytes')} |"
    )


HEADER = (
    "| family | variant | argmax agreement with the float model | with its own float model "
    "| TFLite's interpreter with TFLite Micro "
    "| segment accuracy | FRR at the calibrated rate | flash | arena |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


FIDELITY_HEADER = (
    "| family | variant | agreement with its own float model: informative frames "
    "| where float is at least 50 % sure (share of frames) "
    "| float's own logits on the output grid alone "
    "| float's detections it shares | its detections float does not make |\n"
    "|---|---|---|---|---|---|---|"
)


def fidelity_row(family, variant, r):
    return (
        f"| {family} | {variant} | {100 * r['agreement_with_own_float']:.2f} % | "
        f"{100 * r['agreement_sure_with_own_float']:.2f} % ({100 * r['sure_frames']:.0f} %) | "
        f"{100 * r['output_grid_agreement']:.2f} % | "
        f"{r['detections_shared']} of {r['detections_float']} | "
        f"{r['detections_converted'] - r['detections_shared']} |"
    )


def report(path):
    """Prints the tables of a results file written by an earlier run."""
    results = json.loads(Path(path).read_text())
    print(HEADER)
    for family, rows in results.items():
        for variant, r in rows.items():
            if isinstance(r, dict):
                name = (
                    f"float ({r['epochs']} epochs)" if variant == "float" else variant
                )
                print(row(family, name, r))
    fidelity(results)


def fidelity(results):
    """The second table: which frames disagree, and the decisions."""
    print()
    print(FIDELITY_HEADER)
    for family, rows in results.items():
        for variant, r in rows.items():
            if isinstance(r, dict) and "output_grid_agreement" in r:
                print(fidelity_row(family, variant, r))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(recipes.FAMILIES))
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="default: the recipe's"
    )
    parser.add_argument(
        "--qat-epochs", type=int, default=3, help="0: no quantization-aware variant"
    )
    parser.add_argument(
        "--results",
        default=str(RESULTS / "int8_families.json"),
        help="where to write the results JSON",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default="base",
        help="a size name or width; base (64) for every family, as in docs/benchmarks.md",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--report", default=None, help="only print the table of this results JSON"
    )
    parser.add_argument(
        "--spotter", default=None, help="measure this spotter folder (no training)"
    )
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    print(HEADER, flush=True)
    results = {}
    for family in [None] if args.spotter else args.families:
        start = time.perf_counter()
        if args.spotter:
            spotter = recipes.Spotter.load(args.spotter)
            family = spotter.config.family
            task = spotter.config.keyword_task()
        else:
            changes = {"family": family, "size": args.size, "seed": args.seed}
            if args.max_epochs:
                changes["max_epochs"] = args.max_epochs
            config = recipes.RecipeConfig(**changes)
            task = config.keyword_task()
            spotter = recipes.train_spotter(config, task, verbose=0, log=lambda _: None)
        first = task.train_stream(0)
        test = task.evaluation_stream("test")
        reference = recipes.stream_logits(spotter.model, test.features)
        s = spotter.scores
        rows = {
            "float": {
                "agreement_with_float": None,
                "segment_accuracy": s["test_segment_accuracy"],
                "false_reject_rate": s["test_false_reject_rate"],
                "false_alarms_per_hour": s["test_false_alarms_per_hour"],
                "epochs": s["epochs"],
            }
        }
        print(row(family, f"float ({s['epochs']} epochs)", rows["float"]), flush=True)
        variants = [
            ("PTQ int8", spotter, "int8", True),
            ("PTQ int8, per-tensor weights", spotter, "int8", False),
        ]
        if family != "spiking":
            variants.append(("int16x8", spotter, "int16x8", True))
            variants.append(("int16x8, per-tensor weights", spotter, "int16x8", False))
        if family in QAT_FAMILIES and args.qat_epochs > 0:
            tuned = deploy.quantization_aware_spotter(
                spotter, task, args.qat_epochs, first_stream=first
            )
            variants.append(
                (
                    f"QAT int8 ({args.qat_epochs} epochs, per-tensor weights)",
                    tuned,
                    "int8",
                    False,
                )
            )
            qat_float = recipes.score(
                recipes.probabilities(recipes.stream_logits(tuned.model, test.features)),
                test, tuned.detector, curve=False,
            )  # fmt: skip
            rows["QAT float"] = {
                "agreement_with_float": recipes.scoring.agreement(
                    reference, recipes.stream_logits(tuned.model, test.features), test
                ),
                "segment_accuracy": qat_float["segment_accuracy"],
                "false_reject_rate": qat_float["false_reject_rate"],
                "false_alarms_per_hour": qat_float["false_alarms_per_hour"],
            }
            print(row(family, "QAT model in float", rows["QAT float"]), flush=True)
        for name, model_spotter, quantize, per_channel in variants:
            conversion = deploy.convert_spotter(
                model_spotter, first, quantize, per_channel=per_channel
            )
            rows[name] = measure(model_spotter, conversion, reference, test)
            print(row(family, name, rows[name]), flush=True)
        rows["seconds"] = time.perf_counter() - start
        results[family] = rows
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(results, indent=1, default=float))
    print(
        f"(test stream: {len(test.segments)} utterances of held-out speakers, never reset)"
    )
    fidelity(results)


if __name__ == "__main__":
    main()
