"""The errors gunicorn answers by itself, before the app sees a request (a request line or
headers over the limits, malformed HTTP, a chunked body gone wrong), as Redfish error
bodies instead of gunicorn's HTML pages — and without echoing the offending input.

``RedfishWorker`` is gunicorn's gthread worker with that one change; ``serve`` uses it.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from .messages import RedfishError, message
from .web import EVERY_RESPONSE

# gunicorn's status -> (Base message id, its arguments, what to do)
_BY_STATUS = {
    414: ("GeneralError", (), "Use a shorter URI (the request line is limited to 8190 bytes)."),
    431: ("HeaderInvalid", ("request headers",), "Send fewer or shorter headers (8190 bytes each, 100 at most)."),
    501: ("GeneralError", (), "Send the request without that transfer coding."),
    403: ("GeneralError", (), "Retry over TLS with a valid client certificate, or without one."),
}
_DEFAULT = ("GeneralError", (), "Send a well-formed HTTP/1.1 request.")


def error_body(status: int) -> bytes:
    msg_id, args, resolution = _BY_STATUS.get(status, _DEFAULT)
    err = message(msg_id, *args)
    err["Resolution"] = resolution
    return json.dumps(RedfishError(status, [err]).body(), separators=(",", ":")).encode()


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error, Redfish-shaped; ``mesg`` (which quotes the input) is dropped."""
    body = error_body(status_int)
    head = [f"HTTP/1.1 {status_int} {reason}", "Connection: close",
            "Content-Type: application/json; charset=utf-8", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in EVERY_RESPONSE]
    util.write_nonblock(sock, ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


class RedfishWorker(ThreadWorker):
    def init_process(self):
        util.write_error = write_error  # this worker process's gunicorn answers in Redfish
        super().init_process()
