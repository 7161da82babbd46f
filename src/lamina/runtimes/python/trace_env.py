"""`_X_AMZN_TRACE_ID`, set for every invocation without the process growing.

Lambda's runtimes put each invocation's trace id in the environment (the X-Ray SDK and
Powertools read it there; programs the function runs inherit it). `os.environ[...] =`
calls setenv(), and glibc keeps every string setenv() was ever given, since code may
still hold a pointer getenv() returned: with a new trace id per invocation that
measured 144 bytes per call, for good — tens of MB over a day of a modestly busy
environment, enough to push a 128 MB function into its memory limit.

Here the C environment holds one buffer of our own, put in place once with putenv()
(which keeps the caller's string instead of copying it), and each invocation writes
the new id into that buffer; `os.environ`'s mapping is updated beside it without a
setenv(). Where that cannot be done (no CPython `os.environ`, no libc putenv, an id too
long for the buffer, or the function set the variable itself), it falls back to
`environ[...] =`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import MutableMapping

NAME = "_X_AMZN_TRACE_ID"
_KEY = NAME.encode()
_CAPACITY = 1024  # X-Ray trace headers are far shorter; longer ones take setenv()


class TraceVariable:
    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self._environ = environ
        self._buffer: object | None = None  # "NAME=value\0", in the C environment
        self._data: dict[bytes, bytes] | None = None  # os.environ's own mapping
        # The value os.environ's mapping was last given here: while it is still there
        # (the same object), nothing set or unset the variable through os.environ since,
        # so our buffer is still the C environment's entry.
        self._placed: bytes | None = None
        data = getattr(environ, "_data", None)
        if environ is not os.environ or not isinstance(data, dict):
            return
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            getenv = libc.getenv
            getenv.restype = ctypes.c_void_p
            getenv.argtypes = [ctypes.c_char_p]
            buffer = ctypes.create_string_buffer(len(NAME) + 1 + _CAPACITY + 1)
        except (ImportError, OSError, AttributeError):
            return
        self._putenv = libc.putenv
        self._getenv = getenv
        self._value_at = ctypes.addressof(buffer) + len(NAME) + 1
        # The value's bytes, written in place: a slice assignment, not a foreign call
        # (ctypes' memmove and getenv were ~15% of a warm invocation's Python here).
        self._value = memoryview(buffer).cast("B")[len(NAME) + 1 :]
        memoryview(buffer).cast("B")[: len(NAME) + 1] = _KEY + b"="
        self._buffer, self._data = buffer, data

    def set(self, value: str | None) -> None:
        """The variable for this invocation: `value`, or unset when there is none."""
        environ = self._environ
        if value is None:
            if NAME in environ:
                del environ[NAME]  # unsetenv(): takes our buffer out of the C environment
            return
        encoded = os.fsencode(value)  # as os.environ encodes
        if self._buffer is None or len(encoded) > _CAPACITY or b"\0" in encoded:
            environ[NAME] = value
            return
        end = len(encoded)
        self._value[:end] = encoded
        self._value[end] = 0
        data = self._data
        assert data is not None
        # On first use, or when something replaced it (setenv copies), put ours in place.
        placed = self._placed
        if (
            (placed is None or data.get(_KEY) is not placed)
            and self._getenv(_KEY) != self._value_at
            and self._putenv(self._buffer) != 0
        ):
            self._buffer = None
            environ[NAME] = value
            return
        data[_KEY] = self._placed = encoded

    def release(self) -> None:
        """Hand the variable back to a copy of its own before our buffer can be freed:
        the C environment must never point at memory Python may reuse."""
        if self._buffer is not None and self._getenv(_KEY) == self._value_at:
            value = self._environ.get(NAME)
            if value is not None:
                self._environ[NAME] = value  # setenv() copies it
        self._buffer = None
