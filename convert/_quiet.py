"""Keep TensorFlow's and the converters' log spam off the user's terminal.

Imported first by every ``convert`` module that pulls in TensorFlow: the environment
variables only work when set before TensorFlow's native libraries load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TextIO

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "3")  # TF 2.21's absl logging honours this one
warnings.filterwarnings("ignore", module=r"tensorflow\..*")
warnings.filterwarnings("ignore", module=r"tf2onnx\..*")
warnings.filterwarnings("ignore", message=r".*Statistics for quantized inputs.*")
warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy")
for _name in ("tensorflow", "absl", "tf2onnx", "onnxruntime"):
    logging.getLogger(_name).setLevel(logging.ERROR)

_progress_stream: TextIO | None = None


def progress_stream() -> TextIO:
    """The terminal's stderr, kept usable while :func:`native_output_silenced` is active."""
    global _progress_stream
    if _progress_stream is None:
        try:
            _progress_stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no real fd (e.g. captured in a notebook)
            _progress_stream = sys.stderr
    return _progress_stream


@contextlib.contextmanager
def deprecations_silenced() -> Iterator[None]:
    """Drop Keras/TF deprecation chatter about their own internals (pytest re-enables it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send what native code prints to fds 1/2 into a file; show its tail only on failure.

    Deprecation warnings raised inside are dropped too.

    The TFLite converter and tf2onnx print from C++ and through ``print``; Python-level
    log filters cannot reach that.
    """
    progress_stream()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, deprecations_silenced():
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException as exc:
            sys.stdout.flush()
            sys.stderr.flush()
            sink.seek(0)
            tail = sink.read().decode(errors="replace").strip().splitlines()[-15:]
            if tail:
                exc.add_note("converter output (last lines):\n" + "\n".join(tail))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
