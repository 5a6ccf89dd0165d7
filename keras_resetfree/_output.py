"""Output that C++ code prints straight to the process's file descriptors."""

import contextlib
import ctypes
import os
import sys
import tempfile


class _Captured:
    text = ""


@contextlib.contextmanager
def captured_output(echo_on_error=False):
    """Captures what C++ code prints on file descriptors 1 and 2 (TensorFlow's
    start-up lines, TFLite Micro's DebugLog) into the yielded object's `text`.

    With `echo_on_error`, an exception inside writes the captured text to
    stderr before it propagates, so a failure keeps its explanation.
    """
    captured = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    failed = False
    with tempfile.TemporaryFile(mode="w+") as capture:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield captured
        except BaseException:
            failed = True
            raise
        finally:
            ctypes.CDLL(None).fflush(None)  # C stdio buffers it until flushed
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            capture.seek(0)
            captured.text = capture.read()
            if failed and echo_on_error:
                sys.stderr.write(captured.text)
