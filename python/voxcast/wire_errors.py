"""The errors and tag helpers of voxcast.wire (imported from there; see its docs)."""

from __future__ import annotations

ANY_TAG_MASK = 0
FULL_MASK = (1 << 64) - 1


class WireError(Exception):
    """A wire operation failed; ``code`` is the library's error code name."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AddressError(WireError):
    """The host cannot be resolved or the port cannot be bound."""


class RefusedError(WireError, ConnectionRefusedError):
    """Nobody accepted the connection."""


class PeerFailure(WireError, ConnectionResetError):
    """The peer died or reset the connection."""


class TruncatedError(WireError):
    """The message is larger than the receive buffer."""


class ClosedError(WireError):
    """The endpoint, client or server was closed."""


class WireTimeout(WireError, TimeoutError):
    """A deadline passed."""


class Cancelled(WireError):
    """The operation was cancelled (``Operation.cancel``) before it completed."""


_ERRORS = {
    "address": AddressError,
    "refused": RefusedError,
    "peer_failure": PeerFailure,
    "truncated": TruncatedError,
    "closed": ClosedError,
    "timed_out": WireTimeout,
    "cancelled": Cancelled,
    "invalid_argument": WireError,
}


def _error(code: str, message: str) -> WireError:
    if not message:  # every error names its operation and peer; an empty one is a bug
        message = "failed without a reason (a voxcast.wire bug: please report)"
    return _ERRORS.get(code, WireError)(code, message)


def _reraise(exc: ValueError):
    text = str(exc)
    if "\x1f" in text:
        code, message = text.split("\x1f", 1)
        raise _error(code, message) from None
    raise exc


def _check_mode(mode: str):
    if mode == "polling":
        raise WireError("invalid_argument",
                        "mode 'polling' needs a caller that progresses UCX in a loop; from "
                        "Python use 'thread' or 'eventfd' (with spin_us for lowest latency)")


def _mask(value: int) -> int:
    return value & FULL_MASK
