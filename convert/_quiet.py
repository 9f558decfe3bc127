"""Keep TensorFlow's and the converters' log spam off the user's terminal.

Nothing happens at import: :func:`load_tensorflow` imports TensorFlow with its native
start-up banner silenced (the environment variables that quiet it are set only for
that import), and :func:`quiet_tensorflow_warnings` filters the converters' warnings
and loggers for the duration of a conversion, then puts them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import TextIO

# Read by TensorFlow's native logging when it loads (GLOG_*: TF 2.21's absl logging).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3"}
NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "onnxruntime")

_progress_stream: TextIO | None = None


def load_tensorflow() -> ModuleType:
    """Import TensorFlow once, its native start-up banner silenced; the environment is restored."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    added = {k: v for k, v in QUIET_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        with native_output_silenced():
            import tensorflow
    finally:
        for key in added:
            os.environ.pop(key, None)
    return tensorflow


@contextlib.contextmanager
def quiet_tensorflow_warnings() -> Iterator[None]:
    """Drop TensorFlow's, tf2onnx's and the quantizers' chatter while converting."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"tensorflow\..*")
        warnings.filterwarnings("ignore", module=r"tf2onnx\..*")
        warnings.filterwarnings("ignore", message=r".*Statistics for quantized inputs.*")
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy")
        loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


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
