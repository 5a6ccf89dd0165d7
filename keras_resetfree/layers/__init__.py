"""Stateful recurrent layers for never-reset streaming, one per cell family."""

from keras_resetfree.layers import surrogates
from keras_resetfree.layers.base import ResetFreeCell, ResetFreeRNN
from keras_resetfree.layers.gru import GRU, GRUCell
from keras_resetfree.layers.leaky_readout import LeakyReadout, LeakyReadoutCell
from keras_resetfree.layers.lstm import LSTM, LSTMCell
from keras_resetfree.layers.quantized_dense import QuantizedDense
from keras_resetfree.layers.spiking import ALIFCell, LIFCell, SpikingRNN
from keras_resetfree.layers.ssm import SSM, RingPhase, RingRadius, SSMCell
from keras_resetfree.layers.temporal_conv import TemporalConv, TemporalConvCell
from keras_resetfree.layers.vanilla_rnn import VanillaRNN, VanillaRNNCell

__all__ = [
    "ALIFCell",
    "GRU",
    "GRUCell",
    "LIFCell",
    "LSTM",
    "LSTMCell",
    "LeakyReadout",
    "LeakyReadoutCell",
    "QuantizedDense",
    "ResetFreeCell",
    "ResetFreeRNN",
    "RingPhase",
    "RingRadius",
    "SSM",
    "SSMCell",
    "SpikingRNN",
    "TemporalConv",
    "TemporalConvCell",
    "VanillaRNN",
    "VanillaRNNCell",
    "surrogates",
]
