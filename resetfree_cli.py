"""The `resetfree` command line: argument parsing only (`keras_resetfree.commands` does the work).

A module of its own beside the `keras_resetfree` package, because importing the
package imports Keras and TensorFlow (its layers register with Keras on import,
for `keras.saving.load_model`): from here `resetfree --help` and argument errors
answer at once, and the package loads only for a command that runs.
"""

import argparse
import importlib.metadata
import os
import sys

# Kept here, not imported, so that `resetfree --help` does not load Keras.
FAMILIES = ("vanilla_rnn", "leaky_rnn", "gru", "lstm", "ssm", "spiking")
SIZE_NAMES = ("tiny", "small", "base", "medium", "large")
# The recipe's default size (`recipes.RecipeConfig.size`; a test checks they agree).
DEFAULT_SIZE = "medium"
CALIBRATION_HOURS = 2.0
TASKS = ("kws", "fsdd", "smnist")
# The weight quantization `convert` and `sketch` use unless told: the same as
# `recipes.deploy.convert_spotter`'s default (a test checks they agree).
WEIGHT_SCALES = "per-tensor"
METHODS = ("reset_free", "ce_only", "classic", "reset_free_energy")


def parse_size(text):
    """A `--size` value: a size name, or a width in units (also used by `benchmarks/`)."""
    if text in SIZE_NAMES:
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size name {SIZE_NAMES} or a width in units, not {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"width must be > 0, got {value}")
    return value


def positive_float(text):
    """A value that must be a number > 0 (hours of audio, say)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
    return value


def _weight_scales_option(parser):
    parser.add_argument(
        "--weight-scales",
        choices=["per-channel", "per-tensor"],
        default=WEIGHT_SCALES,
        help="one quantization scale per output channel of each weight tensor, or one per "
        "tensor: per-tensor keeps the accuracy and saves about 9 KB of flash and 3 KB of "
        "arena on a GRU(64), 11 KB on a GRU(80) "
        f"(default {WEIGHT_SCALES})",
    )


def _command(name):
    def run(args):
        # TensorFlow's C++ log (a cuInit error on every CPU-only run, oneDNN
        # notes) is nothing a user of the command can act on; set
        # TF_CPP_MIN_LOG_LEVEL=0 to see it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from keras_resetfree import commands

        return getattr(commands, name)(args)

    return run


def _version():
    try:
        return importlib.metadata.version("keras-resetfree")
    except importlib.metadata.PackageNotFoundError:  # a source tree, not installed
        from keras_resetfree.version import __version__

        return __version__


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="resetfree",
        description="Recurrent networks that run on an endless stream and never reset.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "demo",
        help="the whole pipeline offline: synthesized keywords, never-reset streams, training, streaming",
        description=(
            "Synthesizes keywords with espeak-ng (the embedded default), splits the voices into "
            "training, validation and test, builds keyword streams with background noise "
            "(../shared/data's _background_noise_ when found, else silence), trains with the "
            "recipe (ResetFreeLoss on fresh never-reset windows every epoch, scored on a "
            "never-reset validation stream, best epoch kept), calibrates the detector, and "
            "scores it with the Streamer on a long never-reset stream of held-out voices. Any "
            "backend (KERAS_BACKEND)."
        ),
    )
    p.add_argument(
        "--words", nargs="+", default=["yes", "no", "up", "down", "left", "right"]
    )
    p.add_argument(
        "--per-word", type=int, default=60, help="synthesized utterances per word"
    )
    p.add_argument(
        "--validation-percent",
        type=float,
        default=20.0,
        help="share of voices for validation",
    )
    p.add_argument(
        "--test-percent", type=float, default=25.0, help="share of voices held out"
    )
    p.add_argument("--family", choices=FAMILIES, default="gru")
    p.add_argument(
        "--units",
        type=parse_size,
        default=DEFAULT_SIZE,
        help=f"a size name or the recurrent width (default {DEFAULT_SIZE}: 80 units, the "
        "recipe's)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=15,
        help="most epochs (training stops earlier when converged)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=6,
        help="epochs without improvement before stopping",
    )
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--window", type=int, default=200, help="training window, frames")
    p.add_argument(
        "--train-segments",
        type=int,
        default=1500,
        help="utterances in each epoch's training stream",
    )
    p.add_argument("--test-segments", type=int, default=400)
    p.add_argument("--snr-min", type=float, default=5.0)
    p.add_argument("--snr-max", type=float, default=20.0)
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no data augmentation",
    )
    p.add_argument(
        "--mask",
        choices=["temporal_intensity", "energy", "speech", "truth"],
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
        "--target-false-alarms", type=float, default=5.0,
        help="false alarms per hour the detector is calibrated for (on the validation stream)",
    )  # fmt: skip
    p.add_argument(
        "--calibration-hours", type=positive_float, default=CALIBRATION_HOURS,
        help="hours of never-reset validation audio the detector is calibrated on, for each "
        "SNR range (the streams' and, below 40 dB, quiet rooms up to 40 dB)",
    )  # fmt: skip
    p.add_argument(
        "--plot", default=None, help="save a PNG of a piece of the test stream"
    )
    p.add_argument(
        "--sketch",
        default=None,
        help="also convert the model to int8 TFLite Micro and write the complete Arduino "
        "sketch into this folder",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(run=_command("demo"))

    p = commands.add_parser(
        "train",
        help="train a keyword spotter on a data folder (config file and/or options)",
        description="Trains a keyword spotter with the recipe: a folder in the Speech Commands "
        "layout (one subfolder of WAVs per word; optional _unknown_, _silence_, "
        "_background_noise_), speakers split three ways, training to convergence on a never-reset "
        "validation stream, the detector calibrated for a false-alarm rate. Writes a folder with "
        "model.keras and spotter.json. Options override the config file (TOML, or YAML with "
        "PyYAML); see docs/keyword_spotting.md for its keys.",
    )
    p.add_argument(
        "--config", default=None, help="a TOML or YAML file of recipe settings"
    )
    p.add_argument(
        "--data",
        default=None,
        help="the data folder (default: the shared Speech Commands clips)",
    )
    p.add_argument("--words", nargs="+", default=None)
    p.add_argument("--family", choices=FAMILIES, default=None)
    p.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help=f"a size name or the recurrent width (default {DEFAULT_SIZE}: 80 units)",
    )
    p.add_argument("--depth", type=int, default=None, help="recurrent layers")
    p.add_argument(
        "--front-end",
        nargs="+",
        type=int,
        metavar="N",
        default=None,
        help="FILTERS KERNEL [LAYERS]: causal convolutions over time before the "
        "recurrent layers",
    )
    p.add_argument(
        "--mfcc-coefficients",
        type=int,
        default=None,
        help="MFCC coefficients per frame, of 40 mel bins (default 13)",
    )
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument(
        "--target-false-alarms",
        type=float,
        default=None,
        help="per hour, for calibration",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="the spotter folder to write")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="one line per epoch, not a live progress bar (the default when the output "
        "is not a terminal)",
    )
    p.set_defaults(run=_command("train"))

    p = commands.add_parser(
        "evaluate",
        help="score a spotter on its never-reset test stream: the false-reject / false-alarm trade-off",
        description="Runs the spotter's test stream (speakers and noise it never saw) through the "
        "Streamer without reset and prints segment accuracy, acc_p, the calibrated detector's "
        "hit rate and false alarms per hour, and the false-reject rate at 0.5, 1, 5 and 10 false "
        "alarms per hour.",
    )
    p.add_argument("model", help="a spotter folder written by resetfree train")
    p.add_argument("--data", default=None, help="score on this data folder instead")
    p.add_argument(
        "--segments", type=int, default=None, help="utterances in the test stream"
    )
    p.add_argument(
        "--false-alarm-hours", type=float, default=0.0,
        help="also count false alarms on this many hours of noise and unknown words only",
    )  # fmt: skip
    p.add_argument("--plot", default=None, help="save the trade-off curve as a PNG")
    p.add_argument("--json", default=None, help="write the scores here")
    p.set_defaults(run=_command("evaluate"))

    p = commands.add_parser(
        "calibrate",
        help="calibrate a spotter's detector for another false-alarm rate or SNR ranges",
        description="Chooses the detector's threshold and smoothing with the lowest false-reject "
        "rate at or below --target-false-alarms per hour on hours of never-reset audio of the "
        "validation speakers, rescores the test stream, and rewrites the spotter folder.",
    )
    p.add_argument("model", help="a spotter folder written by resetfree train")
    p.add_argument(
        "--target-false-alarms",
        type=float,
        default=None,
        help="per hour (default: the spotter's)",
    )
    p.add_argument(
        "--hours",
        type=float,
        default=None,
        help="hours of validation audio to calibrate on, for each SNR range",
    )
    p.add_argument(
        "--snr", nargs=2, type=float, action="append", default=None,
        metavar=("MIN", "MAX"),
        help="an SNR range in dB to calibrate on, the target rate kept on each; repeat for "
        "several (default: the spotter's calibration_snr_db, or its streams' SNR and quiet "
        "rooms up to 40 dB)",
    )  # fmt: skip
    p.set_defaults(run=_command("calibrate"))

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
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=["gru"])
    p.add_argument("--units", nargs="+", type=int, default=[64])
    p.add_argument("--tuner", choices=["random", "bayesian"], default="random")
    p.add_argument("--train-segments", type=int, default=1000)
    p.add_argument("--eval-segments", type=int, default=400)
    p.add_argument("--directory", default="tuning")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh (default: resume the search in --directory, whose trials were made "
        "with the options they were made with)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_command("tune"))

    p = commands.add_parser(
        "convert",
        help="convert a spotter folder or a .keras model to a stateful TFLite Micro step model",
        description="Converts a spotter folder (from resetfree train: its Normalization is split "
        "off for the board to apply in float, and it calibrates on its own training stream) or "
        "a .keras model (any backend; conversion runs on TensorFlow) to a per-frame TFLite "
        "(Micro) model whose recurrent state lives inside it (or, with --state external, is an "
        "extra input and output), checks that TFLite Micro can run every op, and prints flash, "
        "measured tensor arena, state bytes, ops and MACs per frame.",
    )
    p.add_argument("model", help="a spotter folder or a .keras model")
    p.add_argument("--out", required=True, help="the .tflite file to write")
    p.add_argument(
        "--calibration",
        default=None,
        help="for a .keras model: a .npy of (frames, features) of a continuous stream; needed for int8",
    )
    p.add_argument("--quantize", choices=["int8", "int16x8", "float"], default="int8")
    p.add_argument("--state", choices=["internal", "external"], default="internal")
    p.add_argument("--frames-per-step", type=int, default=1)
    p.add_argument(
        "--c-array", default=None, help="also write this .cc (and its .h) for a board"
    )
    p.add_argument("--name", default="g_model", help="C name of the array")
    _weight_scales_option(p)
    p.add_argument(
        "--qat",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="for a spotter folder and int8: first fine-tune EPOCHS epochs with the recurrent "
        "state on the int8 grid (quantization-aware), whose ranges the converter then takes",
    )
    p.set_defaults(run=_command("convert"))

    p = commands.add_parser(
        "sketch",
        help="write the complete Arduino sketch folder for a spotter",
        description="Converts a spotter folder to int8 TFLite Micro (checked on its test stream) "
        "and writes the Nano 33 BLE Sense sketch: the sources shipped with the package, the "
        "model, the MFCC tables and standardisation, labels and the calibrated detector.",
    )
    p.add_argument("model", help="a spotter folder written by resetfree train")
    p.add_argument(
        "--out", required=True, help="the sketch folder (its name names the .ino)"
    )
    p.add_argument("--quantize", choices=["int8", "int16x8"], default="int8")
    _weight_scales_option(p)
    p.set_defaults(run=_command("sketch"))

    p = commands.add_parser(
        "experiment",
        help="the paper's protocol: families trained four ways, scored on never-reset streams",
        description="Trains each family each way (reset_free, ce_only, classic, "
        "reset_free_energy) on a task and scores it on never-reset streams of growing "
        "length; see keras_resetfree.experiment.",
    )
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--size", choices=["smoke", "quick", "full"], default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.set_defaults(run=_command("experiment"))

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
