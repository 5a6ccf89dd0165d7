"""The cell families under test, with small sizes."""

import keras

from keras_resetfree import layers

FEATURES = 6
UNITS = 8

# name -> (layer class, constructor arguments)
FAMILIES = {
    "vanilla_rnn": (layers.VanillaRNN, {"units": UNITS}),
    "leaky_rnn": (layers.VanillaRNN, {"units": UNITS, "time_constants": (1, 20)}),
    "gru": (layers.GRU, {"units": UNITS}),
    "lstm": (layers.LSTM, {"units": UNITS}),
    "ssm": (layers.SSM, {"units": UNITS, "state_size": 4}),
    "alif": (layers.SpikingRNN, {"units": UNITS, "threshold": 0.02}),
    "lif": (layers.SpikingRNN, {"units": UNITS, "adaptive": False, "threshold": 0.02}),
    "leaky_readout": (layers.LeakyReadout, {"units": UNITS}),
    "temporal_conv": (layers.TemporalConv, {"filters": UNITS, "kernel_size": 3}),
}


def stacked_model(name, features=FEATURES, dense_head=False):
    """Two layers of a family (spiking: SpikingRNN then LeakyReadout), optional Dense head."""
    layer_cls, kwargs = FAMILIES[name]
    inputs = keras.Input((None, features))
    x = layer_cls(**kwargs)(inputs)
    if name in ("alif", "lif"):
        x = layers.LeakyReadout(UNITS)(x)
    else:
        x = layer_cls(**kwargs)(x)
    if dense_head:
        x = keras.layers.LayerNormalization()(x)
        x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.Dense(3)(x)
    return keras.Model(inputs, x)
