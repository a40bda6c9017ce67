"""Subprocesses that Ctrl-C reaches, however the tests were started."""

import signal


def default_sigint():
    """preexec_fn restoring SIGINT's default action in the child: a shell starts background jobs
    with SIGINT ignored, and a Python started so installs no KeyboardInterrupt handler, so the
    Ctrl-C tests would see the signal ignored instead of what a user's terminal does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
