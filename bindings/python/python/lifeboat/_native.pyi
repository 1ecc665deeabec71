"""Type stubs for the native half of the package (``lifeboat._native``).

Not a public API: use :mod:`lifeboat` and :mod:`lifeboat.aio`.
"""

from typing import Any, Callable, Optional, Sequence, Tuple

__version__: str

#: ``(phase, bytes, total)``
ProgressEvent = Tuple[str, int, Optional[int]]

class Operation:
    """A Lifeboat operation running on the native runtime.

    Dropping one that is still running cancels it.
    """

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait (GIL released) until over or ``timeout`` seconds pass; True when over."""
    def cancel(self) -> None:
        """Ask the operation to stop; it ends with ``CancelledError`` after cleanup."""
    def done(self) -> bool:
        """Whether the operation is over."""
    def result(self) -> Any:
        """The result dict, or raise the typed ``LifeboatError``; RuntimeError while running."""
    def take_progress(self) -> list[ProgressEvent]:
        """Progress events since the last call (only with ``progress=True``)."""
    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once over, from a native thread holding the GIL (at once if over)."""

def start(op: str, options: str, progress: bool = False) -> Operation:
    """Start ``op`` ("backup", "list", "verify", "drill", "restore", "prune", "status") with JSON ``options``."""

def run(
    op: str,
    options: str,
    on_progress: Optional[Callable[[str, int, Optional[int]], object]] = None,
) -> Any:
    """Run ``op`` to completion with the GIL released; Ctrl-C cancels cleanly."""

def run_cli(args: Sequence[str]) -> int:
    """The whole ``lifeboat`` command line; ``args[0]`` is the program name. Returns the exit code."""

def init_logging(json: bool = False, verbose: int = 0, quiet: bool = False) -> None:
    """Send Lifeboat's logs to stderr like the CLI."""

def option_names(op: str) -> list[str]:
    """The option names ``op`` takes: its typed arguments' fields, ``config`` and ``profile``."""
