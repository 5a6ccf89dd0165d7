"""From a trained spotter to a board: int8 conversion with its own calibration stream, checks,
and the complete Arduino sketch folder."""

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import keras
import numpy as np

from keras_resetfree.recipes import scoring, training
from keras_resetfree.recipes.spotter import (
    Spotter,
    calibrate_spotter,
    split_normalization,
)

# The sketch's sources, shipped inside the package (the wheel has them too).
SKETCH_NAME = "resetfree_kws"
# Files `write_sketch` generates for each model: not copied from the template.
GENERATED = {
    "model_data.cpp",
    "model_data.h",
    "model_ops.h",
    "feature_config.cpp",
    "feature_config.h",
    "model_settings.h",
}


def sketch_template():
    """The folder of the packaged sketch sources (`resetfree_kws.ino` and its C++)."""
    return Path(str(resources.files("keras_resetfree.export") / SKETCH_NAME))


@dataclass
class Conversion:
    """A converted spotter: the `.tflite` bytes, the Normalization the board applies in
    float before them (or None), and how it agrees with float on a stream: argmax
    agreement on the informative frames, on those where float is sure
    (`scoring.SURE`), and the calibrated detector's decisions
    (`scoring.SharedDetections`)."""

    data: bytes
    normalization: object
    quantize: str
    agreement: float = float("nan")
    scores: dict = None
    report: object = None
    agreement_sure: float = float("nan")
    detections: object = None


def standardize(normalization, features):
    """Features as the converted model takes them (after the board's float Normalization)."""
    features = np.asarray(features, "float32")
    if normalization is None:
        return features
    # A Normalization built inside a model broadcasts its statistics over
    # (batch, frames, features): keep the shape the features came in.
    return keras.ops.convert_to_numpy(normalization(features)).reshape(features.shape)


def convert_spotter(
    spotter,
    calibration,
    quantize="int8",
    check=None,
    state="internal",
    per_channel=False,
):
    """Converts a spotter's model to a stateful TFLite (Micro) step model.

    A model that starts with a `Normalization` (what `resetfree train` writes)
    is split: the board standardises in float (the sketch does), and the
    step model behind it is converted, so the int8 input scale is not spent
    on raw MFCC ranges. `calibration` is a never-reset training `Stream` (its
    features are the representative data). With a `check` stream, the
    TFLite Micro outputs are compared with the float model's on it.
    `per_channel` is `export.to_tflite`'s, but off by default here: one
    scale per weight tensor keeps the spotter's accuracy and saves about a
    quarter of its flash and a third of its arena (the per-channel
    quantization parameters), which is what fits the default GRU(80) in
    32 KB (`docs/keyword_spotting.md`).
    """
    from keras_resetfree import export

    normalization, classifier = split_normalization(spotter.model)
    data = export.to_tflite(
        classifier,
        standardize(normalization, calibration.features)
        if quantize != "float"
        else None,
        quantize=quantize,
        state=state,
        per_channel=per_channel,
    )
    result = Conversion(data, normalization, quantize)
    if check is not None and state == "internal":
        reference = scoring.stream_logits(spotter.model, check.features)
        micro = export.MicroStepper(data).run(
            standardize(normalization, check.features)
        )
        result.agreement = scoring.agreement(reference, micro, check)
        result.agreement_sure = scoring.agreement(
            reference, micro, check, min_probability=scoring.SURE
        )
        probs = scoring.probabilities(micro)
        result.detections = scoring.shared_detections(
            scoring.probabilities(reference), probs, check, spotter.detector
        )
        result.scores = scoring.score(probs, check, spotter.detector, curve=False)
    return result


def quantization_aware_spotter(
    spotter,
    task,
    epochs=3,
    first_stream=None,
    per_channel=False,
    verbose=0,
    log=lambda _: None,
):
    """The spotter fine-tuned on the int8 grids: weights, activations and state.

    `export.quantization_aware` fixes every 8-bit range (by construction, or
    from the first training stream); the model is then fine-tuned `epochs`
    epochs with the recipe's loss at a tenth of its learning rate, the best
    epoch on the validation stream (run as the board computes) kept (or the
    model before fine-tuning, if no epoch beats it), and the detector
    calibrated again. Convert the result with `convert_spotter(...,
    "int8", per_channel=...)` with the same `per_channel`: the converter
    takes every range from it. Returns a new `Spotter`; `spotter` is unchanged.
    """
    from keras_resetfree import export

    config = spotter.config
    first_stream = first_stream or task.train_stream(0)
    aware = export.quantization_aware(
        spotter.model, first_stream.features, per_channel=per_channel
    )
    log(f"fine-tuning {epochs} epochs on the int8 grids ...")
    history, _ = training.fit(
        aware,
        task,
        max_epochs=epochs,
        patience=max(epochs, 3),
        learning_rate=config.learning_rate / 10,
        kl_weight=config.kl_weight,
        peak_weight=config.peak_weight,
        window=config.window,
        batch_size=config.batch_size,
        verbose=verbose,
        first_stream=first_stream,
        keep_start=True,
    )
    tuned = Spotter(
        aware,
        list(spotter.label_names),
        spotter.detector,
        config,
        {**spotter.scores, "quantization_aware_epochs": len(history.epoch)},
    )
    return calibrate_spotter(tuned, task, log=log)


def write_spotter_sketch(spotter, conversion, folder, mfcc, report=None):
    """Writes the complete sketch folder: the packaged sources, then the model, its MFCC
    tables and standardisation, labels and the spotter's calibrated detector."""
    from keras_resetfree import export

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template = sketch_template()
    sources = [] if folder.resolve() == template.resolve() else template.iterdir()
    for source in sources:
        if source.name in GENERATED or source.suffix not in (".ino", ".cpp", ".h"):
            continue
        # The Arduino IDE wants the .ino named after its folder.
        name = f"{folder.name}.ino" if source.suffix == ".ino" else source.name
        shutil.copyfile(source, folder / name)
    detector = spotter.detector
    return export.write_sketch(
        conversion.data,
        folder,
        mfcc,
        spotter.label_names,
        conversion.normalization,
        threshold=detector.threshold,
        smoothing_frames=detector.smoothing,
        refractory_frames=detector.refractory,
        ignore_classes=spotter.ignore_classes,
        report=report,
    )
