"""An SMTP sink in a process of its own (`python -m bench.sink --port N --maildir DIR`).

A real mail server is another process: in the worker's process the sink's thread would
compete with the worker for the interpreter. The chaos run stops and restarts it.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from offload.dev.stack import SinkRules, SmtpSink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    # Blocked before the server thread starts, so only sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    # `rules.json` in the mail folder tells it which recipients to refuse (see SinkRules).
    rules = SinkRules(path=args.maildir / "rules.json")
    sink = SmtpSink(args.maildir, port=args.port, rules=rules)
    sink.start()
    print(f"sink listening on {sink.host}:{sink.port}", flush=True)
    signal.sigwait(stop_signals)
    sink.stop()


if __name__ == "__main__":
    main()
