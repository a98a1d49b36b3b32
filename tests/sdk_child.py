"""A model process for the SIGKILL tests (run as a script, not collected): it logs CALLS
calls through a durable ``Client`` — three predictions, then one outcome count — and prints
``p <i>`` or ``o <i>`` as soon as each ``log_*()`` call has returned; at the end it closes
the client and prints ``closed True`` or ``closed False``.

    python sdk_child.py URL TOKEN SPOOL CALLS START_ISO
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from mlslo.client import Client


def main() -> None:
    url, token, spool, calls, start = sys.argv[1:6]
    base = datetime.fromisoformat(start)
    client = Client(
        url,
        token or None,
        spool_dir=spool,
        durable=True,
        batch_size=25,
        flush_interval=0.1,
        max_backoff=0.2,
        flush_at_exit=False,
    )
    for i in range(int(calls)):
        ts = base + timedelta(milliseconds=i)
        client.log_predictions(
            [
                {"id": f"p{i}-{j}", "ts": ts, "status": "error" if j == i % 7 else "ok"}
                for j in range(3)
            ]
        )
        print(f"p {i}", flush=True)
        client.log_outcomes({"ts": ts, "total": i + 1, "ok": i})
        print(f"o {i}", flush=True)
    print(f"closed {client.close(timeout=120)}", flush=True)


if __name__ == "__main__":
    main()
