"""Factory reset: the rack gets a new identity and forgets everything people told it.

What goes: accounts (one new ``admin`` with a new generated password in
``STATE_DIR/admin-password``), sessions, the event log, pending commands, every unit
setting (LEDs, boot overrides, outlet policies), asset tags, the power limit, the
service's UUID, and the CA, client CA and HTTPS certificate (new ones are made).
What stays: the units the manifest declares and their energy counters (a measurement
of the hardware, not a setting). Every unit's desired power state becomes Off: a
reset rack comes back as a new rack out of the box, before anyone powers it on.

The agent runs it (``Agent.factory_reset``) after powering the units down, so that the
hardware is safe before anything is forgotten; with no agent running, the CLI runs
it directly. Either way it is one store transaction plus new key files.
"""

from __future__ import annotations

import os

from . import auth, pki
from .store import Store

ADMIN = "admin"
PASSWORD_FILE = "admin-password"


def reset(state_dir: str, store: Store) -> str:
    """Wipe the store's settings and people, make new certificates; returns the path of
    the file holding the new admin password."""
    rack_name = store.rack_info().get("name") or "Racklet"
    password = auth.generate_password()
    store.factory_wipe(ADMIN, auth.hash_password(password))
    new_pki(state_dir, rack_name)
    path = os.path.join(state_dir, PASSWORD_FILE)
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.replace(tmp, path)
    return path


def new_pki(state_dir: str, rack_name: str) -> None:
    """A new CA, HTTPS certificate and client CA, each file replaced atomically."""
    ca_key, ca_cert = pki.make_ca(state_dir, rack_name)
    pki.make_server_cert(state_dir, ca_key, ca_cert)
    pki.make_client_ca(state_dir, rack_name)
