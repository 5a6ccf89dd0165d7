"""Runs espeak-ng on a list of jobs; a script, run in a fresh process by synthesizer.py.

Usage: python espeak_worker.py OUT.npz < jobs.json
It imports nothing from keras_resetfree (so it starts fast) and writes the
int16 speech of every job, in order, with espeak-ng's sample rate.
"""

import ctypes
import json
import sys
from pathlib import Path

import numpy as np

# espeak-ng's C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_CHARS_AUTO = 0

VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
)


class _Espeak:
    """The espeak-ng library, initialised once per process (it keeps global state)."""

    _instance = None

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as error:  # pragma: no cover - environment dependent
            raise ImportError(
                "The keyword synthesizer needs the `audio` extra: pip install "
                "'keras-resetfree[audio]' (espeakng-loader ships espeak-ng and its voices)."
            ) from error
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(
                f"espeak-ng failed to initialise (code {self.sample_rate})."
            )
        self._chunks = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )

        def collect(wav, count, _events):
            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        self._callback = callback_type(collect)  # kept alive for the library
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def speak(self, text, voice, rate, pitch, pitch_range):
        """int16 speech at `self.sample_rate` Hz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}.")
        for parameter, value in (
            (_RATE, rate),
            (_PITCH, pitch),
            (_RANGE, pitch_range),
        ):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        code = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_AUTO, None, None)
        if code != 0:
            raise RuntimeError(
                f"espeak-ng could not synthesize {text!r} (code {code})."
            )
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def main(out):
    jobs = json.loads(sys.stdin.read())
    engine = _Espeak.get()
    speech = []
    for job in jobs:
        speech.append(engine.speak(**job))
        print(len(speech), flush=True)  # progress, one line per utterance
    np.savez(
        out,
        audio=np.concatenate(speech) if speech else np.zeros(0, np.int16),
        lengths=np.array([len(s) for s in speech]),
        rate=engine.sample_rate,
    )


if __name__ == "__main__":
    main(sys.argv[1])
