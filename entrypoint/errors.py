"""The gate's exception tree: each class carries the exit code the CLI turns it into.

Only ``cli.main`` converts these into exit codes; everything below it raises.
"""

from __future__ import annotations

from typing import Any

from entrypoint.reasons import Reason

EXIT_OK = 0
EXIT_USAGE = 64  # EX_USAGE
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the gateway never answered
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a bug in the gate itself
EXIT_IOERR = 74  # EX_IOERR: probe's or explain's report could not be written to stdout
EXIT_CONFIG = 78  # EX_CONFIG: something answers, but it is not our gateway
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class GateError(Exception):
    """Base of every error the gate reports; ``exit_code`` is what the process exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.target: str | None = None  # set when a --also dependency, not the gateway, failed


class UsageError(GateError):
    """A flag or environment variable is missing or malformed (nothing was attempted)."""

    exit_code = EXIT_USAGE


class GatewayTimeout(GateError):
    """The deadline passed before the gateway answered a PING."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(
        self, message: str, *, hint: str | None, attempts: int, last_reason: str, elapsed_s: float
    ) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts
        self.last_reason = last_reason
        self.elapsed_s = elapsed_s


class GatewayMisconfigured(GateError):
    """Something answers on the port, but it is not a ZeroMQ REP gateway we may talk to."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, *, hint: str | None, reason: str) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class CannotBind(GateError):
    """``sim`` cannot listen where it was told: the port is taken, or the address is not
    this host's (a fact about the machine, not a bug: no traceback)."""

    exit_code = EXIT_UNAVAILABLE


class OutputFailed(GateError):
    """A report (``probe``, ``explain``) could not be written to stdout: a full disk, a
    closed pipe. EX_IOERR: the check itself may have gone well, the saying of it did not."""

    exit_code = EXIT_IOERR


class CommandNotFound(GateError):
    """The runner command does not exist on PATH."""

    exit_code = EXIT_NOT_FOUND


class CommandNotExecutable(GateError):
    """The runner command exists but cannot be executed."""

    exit_code = EXIT_NOT_EXECUTABLE


class GateSignal(BaseException):
    """Raised from the SIGTERM/SIGINT handler so that any blocking call unwinds at once.

    A BaseException (like KeyboardInterrupt) so that no ``except Exception`` on the way
    up can swallow it; ``finally`` blocks still close sockets on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        import signal  # noqa: PLC0415 - only when a stop is reported: not on a healthcheck's path

        return signal.Signals(self.signum).name


# --- outcomes of one check, below the CLI: retried, reported, never an exit code --------


class AttemptFailed(Exception):
    """One attempt did not reach readiness; ``stage`` says which layer failed."""

    def __init__(self, stage: str, reason: Reason, error: str) -> None:
        super().__init__(f"{stage}: {reason}: {error}")
        self.stage = stage
        self.reason = reason
        self.error = error
        # For a well-formed refusal (not_ready): the reply, and what makes two refusals
        # "the same one again" (the reply without its timestamps and ids).
        self.reply: object = None
        self.same_as: str | None = None
        # When the reply names why the bridge cannot trade (gateway/broker_states): the
        # state's name, and what to do in the terminal (the hint for this failure).
        self.broker_state: str | None = None
        self.advice: str | None = None
        # Says nothing either way about a configuration error (a ZeroMQ peer that dropped
        # the handshake without a word: a restarting gateway, or one that noticed a
        # socket-type mismatch first): it neither counts toward nor breaks a streak.
        self.inconclusive = False
        # How far the attempt got before this failure (gateway.check.Trace), when known.
        self.trace: Any = None


class NotPermitted(Exception):
    """This process may not do what the check needs (send ICMP echo requests): skipped."""


class MissingExtra(Exception):
    """A check needs a client library that is not installed: a warning naming the extra."""
