"""The API workers' side of the command path to the agent.

A command is first a durable row in the store; the Unix socket only wakes the agent
and carries its answer back. If the agent does not answer in time, the command is
withdrawn (if it has not started), so a failed request changes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time

from . import SOCKET_NAME


class AgentUnavailable(Exception):
    pass


def run_command(store, state_dir: str, unit_id: str, action: str, timeout: float = 5.0) -> dict:
    cid = store.add_command(unit_id, action, time.time())
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(os.path.join(state_dir, SOCKET_NAME))
            s.sendall(json.dumps({"command": cid}).encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline(65536))
        if reply.get("id") == cid:
            return reply
    except (OSError, ValueError):
        pass
    if store.cancel_command(cid, time.time()):
        raise AgentUnavailable("the rack agent did not answer")
    row = store.command(cid)
    if row and row["state"] in ("done", "rejected"):
        return {"id": cid, "state": row["state"], "message": row["message"]}
    raise AgentUnavailable("the rack agent did not finish the command")


def sim_command(state_dir: str, op: str, unit: str, value=None, timeout: float = 5.0) -> dict:
    """Ask the agent of a simulated rack to change the simulation (``redfish-racklet sim``).

    The socket is the state directory's (mode 0600): whoever may read the store may
    play the hand at the rack; nobody else can."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.path.join(state_dir, SOCKET_NAME))
        s.sendall(json.dumps({"sim": op, "unit": unit, "value": value}).encode() + b"\n")
        return json.loads(s.makefile("rb").readline(65536))
