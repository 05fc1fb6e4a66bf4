"""The one exception tree of orpheus-bench; drivers translate transport errors into it at the boundary.

    OrpheusBenchError                 base of everything we raise on purpose
    ├── ConfigError                   bad scenario, CLI value, rules file: exit 2 before any request
    ├── ServerError                   a whole-run fault with the target server (not found, never healthy)
    │   └── ServerNotReady            /health kept answering 503 (model loading) past the wait limit
    ├── LaunchError                   llama-server could not be found, built or started
    │   └── ClientProcessError        a client worker process did not start, or none is left (client/processes.py)
    └── RequestError                  one request failed; carries an `ErrorClass` and becomes record data
        ├── ConnectError              connect refused / DNS / connect timeout
        ├── HTTPStatusError           non-2xx answer
        │   ├── AuthError             401/403: --api-key missing or wrong
        │   └── ContextSizeError      400 exceed_context_size_error: the prompt cannot get audio (no_audio)
        ├── ProtocolError             malformed SSE or JSON, stream ended without its final event
        ├── DisconnectError           connection dropped mid-stream
        ├── StreamTimeout             total or between-token timeout
        ├── InvalidAudioError         too many out-of-range audio codes
        ├── NoAudioError              no complete audio frame in the response
        └── DecodeError               SNAC decoding failed

A `RequestError` never escapes a driver: it is caught per request and written into the record with
`RequestRecord.fail`. Only `ConfigError`, `ServerError` and `LaunchError` end a run.
"""

from __future__ import annotations

from orpheus_bench.records import ErrorClass


class OrpheusBenchError(Exception):
    """Base class of every error raised on purpose by orpheus-bench."""


class ConfigError(OrpheusBenchError):
    """Invalid user input; `field` names the offending key or option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ServerError(OrpheusBenchError):
    """The target server is unusable for the whole run."""


class ServerNotReady(ServerError):
    """The server kept reporting that it is loading."""


class LaunchError(OrpheusBenchError):
    """llama-server could not be located, built or started."""


class RequestError(OrpheusBenchError):
    """A failure of one request; its `error_class` goes into the record."""

    error_class: ErrorClass = ErrorClass.CLIENT

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class ConnectError(RequestError):
    error_class = ErrorClass.CONNECT


class HTTPStatusError(RequestError):
    error_class = ErrorClass.HTTP


class AuthError(HTTPStatusError):
    error_class = ErrorClass.AUTH


class ContextSizeError(HTTPStatusError):
    """The prompt does not fit the slot's context, so no audio can come back: recorded as ``no_audio``."""

    error_class = ErrorClass.NO_AUDIO


class ProtocolError(RequestError):
    error_class = ErrorClass.PROTOCOL


class DisconnectError(RequestError):
    error_class = ErrorClass.DISCONNECT


class StreamTimeout(RequestError):
    error_class = ErrorClass.TIMEOUT


class InvalidAudioError(RequestError):
    error_class = ErrorClass.INVALID_AUDIO


class NoAudioError(RequestError):
    error_class = ErrorClass.NO_AUDIO


class DecodeError(RequestError):
    error_class = ErrorClass.DECODE
