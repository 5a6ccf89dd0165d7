"""The family registry: one `build_model` for every recurrent family, sizes by name."""

import keras

from keras_resetfree import layers

FAMILIES = ("vanilla_rnn", "leaky_rnn", "gru", "lstm", "ssm", "spiking")

# The leaky RNN's units start with time constants from one frame (20 ms in the
# keyword task) to about a second, a word's length.
LEAKY_TIME_CONSTANTS = (1.0, 50.0)

# The spiking family's membrane and readout time constants, in frames (40 ms at the
# keyword task's 20-ms step): each starts normal(mean, std) and is trained. The
# layers' own defaults (membrane 20, adaptation 200, readout 20) are Yin et al.
# (2021)'s in milliseconds, for 1-ms time steps; on 20-ms frames they make a
# 0.4-s membrane, a 4-s threshold adaptation and a 0.4-s readout, which smear a
# word out and left the keyword model at chance. No threshold adaptation: it held
# the firing rate down and learned more slowly (docs/keyword_spotting.md).
SPIKING_TIME_CONSTANT = (2.0, 0.5)

# Width of each recurrent layer by size name. Spiking layers get twice the
# neurons: a spiking neuron carries one bit per frame, and at twice the width
# its weights still cost about what a GRU's do.
SIZES = {"tiny": 32, "small": 48, "base": 64, "medium": 80, "large": 96}


def units_for(family, size):
    """Recurrent width of `family` at `size` (a name in `SIZES`, or an int)."""
    _check_family(family)
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"Unknown size {size!r}; choose from {list(SIZES)}.")
        size = SIZES[size]
        if family == "spiking":
            size *= 2
    if int(size) <= 0:
        raise ValueError(
            f"size must be a name in {list(SIZES)} or units > 0, got {size}."
        )
    return int(size)


def _check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose from {FAMILIES}.")


def _recurrent(family, units):
    if family == "vanilla_rnn":
        return layers.VanillaRNN(units)
    if family == "leaky_rnn":
        return layers.VanillaRNN(units, time_constants=LEAKY_TIME_CONSTANTS)
    if family == "gru":
        return layers.GRU(units)
    if family == "lstm":
        return layers.LSTM(units)
    if family == "ssm":
        return layers.SSM(units, state_size=max(units // 2, 1))
    return layers.SpikingRNN(
        units,
        adaptive=False,
        threshold=0.02,
        tau_m_initializer=_spiking_time_constants(),
    )


def _spiking_time_constants():
    return keras.initializers.RandomNormal(*SPIKING_TIME_CONSTANT)


def build_model(
    family,
    num_features,
    num_classes,
    size="base",
    depth=1,
    projection=None,
    front_end=None,
    normalization=None,
    name=None,
    dropout=0.0,
):
    """A per-frame classifier: [Normalization] -> [front end] -> [projection] -> (recurrent [-> Dropout]) x depth -> logits.

    Args:
        family: one of `FAMILIES`.
        num_features: features per frame.
        num_classes: outputs per frame (logits).
        size: a name in `SIZES` or the recurrent width (units; neurons for spiking).
        depth: recurrent layers stacked (1 or more).
        projection: width of a linear input projection before the first
            recurrent layer (None: none). It shrinks the first input kernel
            when the features are wider than the recurrent layer.
        front_end: None, or `(filters, kernel_size)` of a causal convolution
            over time (`layers.TemporalConv`, ReLU) before the first
            recurrent layer: each of its outputs sees `kernel_size` frames;
            `(filters, kernel_size, layers)` stacks `layers` of them (each
            output then sees `layers * (kernel_size - 1) + 1` frames).
        normalization: None, a `keras.layers.Normalization` (adapted or
            not), or an array of training features to adapt one on.
        dropout: rate of a `keras.layers.Dropout` after each recurrent
            layer (training only; 0: none). It acts on each frame alone, so
            the Streamer and the converter take it (as the identity).
        name: the model's name (default the family).

    Returns:
        A functional `keras.Model` from `(batch, frames, num_features)` to
        `(batch, frames, num_classes)` logits: spiking models read out with
        `LeakyReadout`, the others with `Dense`.
    """
    _check_family(family)
    units = units_for(family, size)
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1, got {depth}.")
    if projection is not None and int(projection) <= 0:
        raise ValueError(f"projection must be a width > 0 or None, got {projection}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    front_end = checked_front_end(front_end)
    inputs = keras.Input((None, int(num_features)))
    x = inputs
    if normalization is not None:
        if not isinstance(normalization, keras.layers.Normalization):
            data = normalization
            normalization = keras.layers.Normalization(axis=-1)
            normalization.adapt(data)
        x = normalization(x)
    if front_end is not None:
        filters, kernel_size, *stacked = front_end
        for i in range(stacked[0] if stacked else 1):
            x = layers.TemporalConv(
                filters,
                kernel_size=kernel_size,
                name="front_end" if i == 0 else f"front_end_{i + 1}",
            )(x)
    if projection is not None:
        x = keras.layers.Dense(int(projection), name="projection")(x)
    for _ in range(int(depth)):
        x = _recurrent(family, units)(x)
        if dropout:
            x = keras.layers.Dropout(float(dropout))(x)
    if family == "spiking":
        logits = layers.LeakyReadout(
            int(num_classes), tau_initializer=_spiking_time_constants()
        )(x)
    else:
        logits = keras.layers.Dense(int(num_classes), name="logits")(x)
    return keras.Model(inputs, logits, name=name or family)


def checked_front_end(front_end):
    """`(filters, kernel_size[, layers])` as ints, or None; a message naming the value otherwise."""
    if front_end is None:
        return None
    try:
        values = tuple(int(v) for v in front_end)
    except (TypeError, ValueError):
        values = ()
    if len(values) not in (2, 3) or values[0] <= 0 or values[1] < 2 or min(values) < 1:
        raise ValueError(
            "front_end must be None or (filters > 0, kernel_size >= 2 frames[, "
            f"layers >= 1]), got {front_end!r}."
        )
    return values
