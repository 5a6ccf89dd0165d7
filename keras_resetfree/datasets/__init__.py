"""Datasets for continual inference: real loaders and an offline keyword synthesizer."""

from keras_resetfree.datasets.audio_dataset import AudioDataset
from keras_resetfree.datasets.audio_io import AudioFileError, load_audio, resample
from keras_resetfree.datasets.fsdd import load_fsdd
from keras_resetfree.datasets.images import load_fashion_mnist, load_mnist, read_idx
from keras_resetfree.datasets.paths import data_dir, keras_cache_dir
from keras_resetfree.datasets.speech_commands import (
    TEN_WORDS,
    load_background_noise,
    load_speech_commands,
)
from keras_resetfree.datasets.splits import speaker_partition
from keras_resetfree.datasets.synthesizer import synthesize_keywords
from keras_resetfree.datasets.wav_folder import load_wav_folder

__all__ = [
    "TEN_WORDS",
    "AudioDataset",
    "AudioFileError",
    "data_dir",
    "keras_cache_dir",
    "load_audio",
    "load_background_noise",
    "load_fashion_mnist",
    "load_fsdd",
    "load_mnist",
    "load_speech_commands",
    "load_wav_folder",
    "read_idx",
    "resample",
    "speaker_partition",
    "synthesize_keywords",
]
