"""Where int8 loses agreement with float for SSM and spiking keyword models.

    KERAS_BACKEND=tensorflow python benchmarks/int8_sensitivity.py [--size quick]

Trains an SSM and a spiking (adaptive LIF + LeakyReadout) classifier as
`bench_tflm.py` does (the `kws` task: 10 Speech Commands words, speaker split;
needs `../shared/data`) and prints two measurements on the never-reset test
stream:

1. Rounded constants, float arithmetic. Each group of decay constants is
   rounded to the grid an int8 constant operand gets in TFLite (one scale per
   tensor, 256 levels from min(x, 0) to max(x, 0)), and for comparison to a
   16-bit grid (65,536 levels); everything else stays float. Printed: how far that moves `1 - decay` (the part that sets the
   time constant), and the argmax agreement of the rounded float model with
   the original on the informative frames (as `bench_tflm.py --agreement`).
2. SSM state error per mode. The int8 model with external state (its state
   is an output) runs in the TFLite Micro interpreter next to the float
   Streamer, frame by frame; the mean |int8 - float| state error of each mode,
   in steps of the state's int8 scale, is grouped by the mode's |lambda|.
   A slow mode (|lambda| near 1) changes by (1 - |lambda|) of its value per
   frame, and an int8 state cannot follow a change smaller than half a step.
3. The spiking model exported in float (`quantize="float"`), run in TFLite
   Micro over the whole test stream, against Keras.

    KERAS_BACKEND=tensorflow python benchmarks/int8_sensitivity.py --spotter my_spotter

With `--spotter` (a folder from `resetfree train` or `kws_recipe.py recipe
--save`) it measures instead which kind of op costs a keyword spotter its
int8 agreement: the spotter's int8 step model (per-tensor weights, as
`resetfree convert` makes it, calibrated on the first training stream) is
rebuilt with TFLite's selective quantization, once with each kind of op left
in float (QUANTIZE / DEQUANTIZE around it) and once with only that kind
quantized, and run in the TFLite Micro interpreter on the never-reset test
stream of the spotter's task: argmax agreement with float on informative
frames, and segment accuracy.
"""

import argparse
import time

import numpy as np
from bench_tflm import load_kws, train_recurrent


def round_to_grid(x, bits):
    """`x` rounded as TFLite quantizes a constant tensor to `bits` bits (per tensor, asymmetric)."""
    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (high - low) / (2**bits - 1) or 1.0
    return np.round((x - low) / scale) * scale + low


def agreement(got, reference, informative):
    return float(
        np.mean(got.argmax(-1)[informative] == reference.argmax(-1)[informative])
    )


def ssm_cell(model):
    from keras_resetfree.layers import SSM

    return next(layer for layer in model.layers if isinstance(layer, SSM)).cell


def set_eigenvalues(cell, lam_re, lam_im):
    """Sets `nu` and `theta_log` so that the cell's eigenvalues are `lam_re + i lam_im`."""
    radius = np.clip(np.hypot(lam_re, lam_im), 1e-6, np.exp(-1e-4))
    theta = np.maximum(np.arctan2(lam_im, lam_re), 1e-6)
    cell.nu.assign(np.log(-np.log(radius)))
    cell.theta_log.assign(np.log(theta))


def ssm_groups(model, bits):
    """[(name, apply, 1 - |lambda| before, after)] for the SSM's eigenvalues."""
    import keras

    cell = ssm_cell(model)
    lam_re, lam_im = (keras.ops.convert_to_numpy(v) for v in cell.eigenvalues())
    rounded = round_to_grid(lam_re, bits), round_to_grid(lam_im, bits)

    def apply():
        set_eigenvalues(cell, *rounded)

    return [
        (
            "SSM eigenvalues (lambda re and im)",
            apply,
            1 - np.hypot(lam_re, lam_im),
            1 - np.hypot(*rounded),
        )
    ]


def spiking_groups(model, bits):
    """[(name, apply, 1 - decay before, after)] for each decay of a spiking model."""
    import keras

    from keras_resetfree.layers import LeakyReadout, SpikingRNN

    groups = []
    for layer in model.layers:
        if isinstance(layer, SpikingRNN):
            names = [
                ("tau_m", "membrane decay alpha"),
                ("tau_adp", "adaptation decay rho"),
            ]
        elif isinstance(layer, LeakyReadout):
            names = [("tau", "readout decay")]
        else:
            continue
        cell = layer.cell
        for attribute, label in names:
            if not hasattr(cell, attribute):
                continue
            variable = getattr(cell, attribute)
            tau = keras.ops.convert_to_numpy(variable)
            decay = np.exp(-cell.dt / np.maximum(tau, cell.dt))
            rounded = np.minimum(round_to_grid(decay, bits), 1 - 1e-7)

            def apply(variable=variable, rounded=rounded, dt=cell.dt):
                variable.assign(-dt / np.log(rounded))

            groups.append((f"spiking {label}", apply, 1 - decay, 1 - rounded))
    return groups


def rounded_constants(model, groups, features, reference, informative):
    import keras

    from keras_resetfree import Streamer

    saved = [keras.ops.convert_to_numpy(v) for v in model.weights]
    rows = []
    for name, apply, before, after in groups + [("all of the above", None, None, None)]:
        if apply is None:
            for _, group_apply, _, _ in groups:
                group_apply()
        else:
            apply()
        got = Streamer(model).run(features[None], chunk_size=250)[0]
        change = (
            f"{100 * np.max(np.abs(after - before) / before):.2g} %"
            if before is not None
            else "-"
        )
        rows.append((name, change, agreement(got, reference, informative)))
        for variable, value in zip(model.weights, saved):
            variable.assign(value)
    return rows


def ssm_state_error(model, calibration, features, frames):
    """Per mode: |lambda|, mean |int8 - float| state error and mean |state|, in int8 steps."""
    import keras

    from keras_resetfree import Streamer, export

    data = export.to_tflite(model, calibration, quantize="int8", state="external")
    stepper = export.MicroStepper(data)
    scale, zero_point = stepper.state_details[0]["quantization"]
    streamer = Streamer(model, batch_size=1)
    error = amplitude = 0.0
    for t in range(frames):
        stepper.step(features[t : t + 1])
        streamer.step(features[None, t : t + 1])
        exact = np.asarray(streamer.state[0][0]).ravel()
        got = (stepper.states[0].astype(np.float64).ravel() - zero_point) * scale
        error = error + np.abs(got - exact)
        amplitude = amplitude + np.abs(exact)
    cell = ssm_cell(model)
    modes = cell.modes
    lam_re, lam_im = (keras.ops.convert_to_numpy(v) for v in cell.eigenvalues())
    per_mode = lambda v: (v[:modes] + v[modes:]) / (2 * frames * scale)  # noqa: E731
    return np.hypot(lam_re, lam_im), per_mode(error), per_mode(amplitude)


# Ops that hold no arithmetic of their own: the state's variables, the init subgraph
# and the quantizer's own conversions.
NOT_ARITHMETIC = {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
                  "QUANTIZE", "DEQUANTIZE"}  # fmt: skip
# Ops that move int8 values without rescaling them: kept in float with the
# others in "only X int8" rows, so that the tensors they pass on stay float.
# (With the state's variables quantized, the quantizer fails on a float RESHAPE.)
NEUTRAL = {"SPLIT", "UNPACK"}


def spotter_ops(folder, per_channel):
    """Agreement of the spotter's int8 model with each kind of op left in float, or only it
    quantized."""
    from keras_resetfree import export, recipes
    from keras_resetfree.export.tf_step import selective_int8
    from keras_resetfree.recipes import deploy, scoring

    spotter = recipes.Spotter.load(folder)
    task = spotter.config.keyword_task()
    calibration = task.train_stream(0)
    test = task.evaluation_stream("test")
    normalization, classifier = recipes.split_normalization(spotter.model)
    calibration = deploy.standardize(normalization, calibration.features)
    features = deploy.standardize(normalization, test.features)
    reference = scoring.stream_logits(spotter.model, test.features)
    accuracy = np.mean(
        scoring.segment_predictions(
            scoring.probabilities(reference), test, spotter.detector.silence_threshold
        )
        == test.segments[:, 2]
    )
    print(
        f"spotter {folder}: {spotter.model.count_params():,} parameters; test stream of "
        f"{len(test.segments)} utterances, {int((test.labels != test.noise_label).sum())} "
        f"informative frames; float segment accuracy {100 * accuracy:.1f} %\n"
        "| ops left in float | argmax agreement with float | segment accuracy |\n|---|---|---|"
    )
    # Every kind of op the int8 model holds. A tensor between two float ops
    # stays float; one between an int8 op and a float op is still rounded to
    # int8 (QUANTIZE / DEQUANTIZE): "all but X" rounds only X's outputs.
    held = set(export.inspect(selective_int8(classifier, calibration, [])).ops)
    kinds = sorted(held - NOT_ARITHMETIC - NEUTRAL - {"RESHAPE"})
    neutral = sorted(held & NEUTRAL)
    rows = {"none (all int8)": []} | {kind: [kind] for kind in kinds}
    rows |= {f"all but {kind}": [k for k in kinds if k != kind] + neutral
             for kind in kinds}  # fmt: skip
    rows["all but RESHAPE"] = kinds + neutral
    results = {}
    for name, float_ops in rows.items():
        try:
            data = selective_int8(
                classifier, calibration, float_ops, per_channel=per_channel
            )
        except RuntimeError as error:
            # TFLite's selective quantizer refuses some splits of some graphs
            # (seen: an LSTM step with TANH left in float): say so, go on.
            reason = str(error).strip().splitlines()[:1] or ["no message"]
            results[name] = None
            print(
                f"| {name} | TFLite's quantizer failed: RuntimeError, {reason[0]} | - |"
            )
            continue
        micro = export.MicroStepper(data).run(features)
        agreement = scoring.agreement(reference, micro, test)
        predicted = scoring.segment_predictions(
            scoring.probabilities(micro), test, spotter.detector.silence_threshold
        )
        results[name] = (agreement, float(np.mean(predicted == test.segments[:, 2])))
        print(
            f"| {name} | {100 * agreement:.2f} % | {100 * results[name][1]:.1f} % |",
            flush=True,
        )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="quick", choices=["smoke", "quick", "full"])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--frames", type=int, default=6000, help="frames of the SSM state comparison"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--spotter",
        default=None,
        help="a spotter folder: which ops cost int8 agreement",
    )
    parser.add_argument(
        "--per-channel",
        action="store_true",
        help="--spotter: per-channel weight scales",
    )
    args = parser.parse_args()
    if args.spotter is not None:
        spotter_ops(args.spotter, args.per_channel)
        return

    from keras_resetfree import Streamer, export

    start = time.perf_counter()
    data, train, standardize, features = load_kws(args.size, args.seed, "SSM")
    calibration = standardize(train.features)
    informative = data.test.mask.astype(bool)
    print(
        f"kws task ({args.size}): never-reset test stream of {len(features)} frames, "
        f"{int(informative.sum())} informative"
    )

    print(
        "\n1. Decay constants rounded to the grid of a TFLite constant (int8, and int16 for "
        "comparison), float arithmetic"
    )
    print(
        "| constants rounded | int8 grid: largest change of 1 - decay | argmax agreement "
        "with float | int16 grid: largest change of 1 - decay | argmax agreement with float |"
    )
    print("|---|---|---|---|---|")
    models = {}
    for family, groups in (("ssm", ssm_groups), ("spiking", spiking_groups)):
        model = train_recurrent(
            family,
            train,
            standardize,
            data.num_classes,
            args.units,
            args.epochs,
            args.seed,
        )
        models[family] = model
        reference = Streamer(model).run(features[None], chunk_size=250)[0]
        by_bits = [
            rounded_constants(
                model, groups(model, bits), features, reference, informative
            )
            for bits in (8, 16)
        ]
        for (name, change8, share8), (_, change16, share16) in zip(*by_bits):
            label = (
                name if name != "all of the above" else f"{family}: all of the above"
            )
            print(
                f"| {label} | {change8} | {100 * share8:.2f} % | {change16} | "
                f"{100 * share16:.2f} % |"
            )

    frames = min(args.frames, len(features))
    radius, error, amplitude = ssm_state_error(
        models["ssm"], calibration, features, frames
    )
    print(
        f"\n2. SSM int8 state against float, {frames} frames in TFLite Micro "
        "(external state), per mode, in steps of the int8 state scale"
    )
    print(
        "| abs(lambda) | modes | 0.5 / (1 - abs(lambda)) | mean abs error | mean abs state |"
    )
    print("|---|---|---|---|---|")
    edges = [0.0, 0.8, 0.9, 0.95, 1.0]
    for low, high in zip(edges[:-1], edges[1:]):
        selected = (radius >= low) & (radius < high)
        if not selected.any():
            continue
        print(
            f"| {low:.2f}-{high:.2f} | {int(selected.sum())} | "
            f"{np.mean(0.5 / (1 - radius[selected])):.1f} | "
            f"{np.mean(error[selected]):.2f} | {np.mean(amplitude[selected]):.1f} |"
        )
    print(
        "correlation of the error with 1 / (1 - abs(lambda)): "
        f"{np.corrcoef(1 / (1 - radius), error)[0, 1]:.2f}; with the mode's mean abs state: "
        f"{np.corrcoef(amplitude, error)[0, 1]:.2f}"
    )

    spiking = models["spiking"]
    reference = Streamer(spiking).run(features[None], chunk_size=250)[0]
    got = export.MicroStepper(export.to_tflite(spiking, quantize="float")).run(features)
    print(
        "\n3. The spiking model exported in float, in TFLite Micro, over the whole test "
        f"stream: max |difference| from Keras {np.abs(got - reference).max():.1e}, argmax "
        f"agreement {100 * agreement(got, reference, informative):.2f} %"
    )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
