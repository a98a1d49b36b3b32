"""The Python SDK: log predictions, labels and outcome counts to an mlslo server.

``Client`` batches records in the background and sends them as Arrow. Every batch is first
written to an on-disk spool and deleted only once the server has acknowledged it, so nothing
is lost while the server is down or the process restarts; spooled batches are sent in order
with retries and backoff, each under an idempotency key, so a batch whose acknowledgement
was lost is not counted twice. ``resend`` delivers a spool from outside a client (after a
refused token was fixed). ``upload_file`` and ``api_request`` serve the command line.
"""

from mlslo.client.delivery import Resent, resend
from mlslo.client.sdk import Client
from mlslo.client.spool import SpoolError, default_folder
from mlslo.client.wire import (
    ARROW_STREAM,
    KINDS,
    DeliveryError,
    Totals,
    api_request,
    arrow_bytes,
    to_table,
    upload_file,
)

__all__ = [
    "ARROW_STREAM",
    "KINDS",
    "Client",
    "DeliveryError",
    "Resent",
    "SpoolError",
    "Totals",
    "api_request",
    "arrow_bytes",
    "default_folder",
    "resend",
    "to_table",
    "upload_file",
]
