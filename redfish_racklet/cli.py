"""The ``redfish-racklet`` command: init, serve, and the agent process that serve starts."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__

DB_NAME = "racklet.db"
PASSWORD_FILE = "admin-password"


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "redfish-racklet")


def is_initialized(state_dir: str) -> bool:
    return os.path.exists(os.path.join(state_dir, DB_NAME))


def init(state_dir: str, admin_password_file: str | None = None, rack_name: str = "Racklet") -> int:
    from . import auth, pki
    from .store import Store

    if is_initialized(state_dir):
        print(f"redfish-racklet: {state_dir} is already initialised", file=sys.stderr)
        return 1
    if admin_password_file:
        try:
            with open(admin_password_file, encoding="utf-8") as f:
                password = f.read().rstrip("\r\n")
        except OSError as e:
            print(f"redfish-racklet: cannot read {admin_password_file}: {e.strerror}", file=sys.stderr)
            return 2
        problem = auth.password_problem(password)
        if problem:
            print(f"redfish-racklet: the admin password in {admin_password_file} is refused: {problem}",
                  file=sys.stderr)
            return 2
    else:
        password = auth.generate_password()
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    ca_key, ca_cert = pki.make_ca(state_dir, rack_name)
    pki.make_server_cert(state_dir, ca_key, ca_cert)
    pki.make_client_ca(state_dir, rack_name)
    store = Store(os.path.join(state_dir, DB_NAME + ".new"))
    store.create()
    store.add_account("admin", auth.hash_password(password), "Administrator")
    store.close()
    if not admin_password_file:
        path = os.path.join(state_dir, PASSWORD_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        print(f"redfish-racklet: created account 'admin'; its password is in {path}")
    # The store appears last and whole: a state dir with racklet.db is a complete one.
    os.replace(os.path.join(state_dir, DB_NAME + ".new"), os.path.join(state_dir, DB_NAME))
    print(f"redfish-racklet: initialised {state_dir} (rack CA: {os.path.join(state_dir, 'ca.pem')})")
    return 0


MIN_FREE_BYTES = 1 << 20   # below this, serve refuses to start: SQLite could not even write its WAL


def preflight(state_dir: str) -> str | None:
    """Why ``serve`` must not start on this state directory, or None: checked before
    anything is written, so a read-only or full file system or a damaged store is refused
    with its reason instead of failing half-way (and nothing is re-initialised)."""
    from .store import StoreError, check

    if not os.path.isdir(state_dir):
        return None   # init makes it
    if not os.access(state_dir, os.W_OK):   # (a read-only mount refuses root too: EROFS)
        return (f"the state directory {state_dir} is not writable (a read-only file system?); "
                f"make it writable, then start again")
    st = os.statvfs(state_dir)
    if st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
        return (f"the file system of the state directory {state_dir} is full (less than "
                f"{MIN_FREE_BYTES >> 20} MiB free); free some space, then start again")
    if is_initialized(state_dir):
        try:
            check(os.path.join(state_dir, DB_NAME))
        except StoreError as e:
            return str(e)
    elif os.path.exists(os.path.join(state_dir, "ca.pem")):
        # a rack identity without its store: the store was lost (init writes it last). A new
        # init would silently make a new CA and admin password over the old ones.
        return (f"{state_dir} has the rack's CA (ca.pem) but no store "
                f"({os.path.join(state_dir, DB_NAME)}): restore {DB_NAME} from a backup, or move "
                f"the directory aside to start a new rack")
    return None


def _serve(args) -> int:
    from .manifest import ManifestError, load
    from .server import StateDirBusy, serve

    try:
        load(args.manifest)
    except ManifestError as e:
        print(f"redfish-racklet: {e}", file=sys.stderr)
        return 2
    state_dir = os.path.abspath(args.state_dir)
    problem = preflight(state_dir)
    if problem:
        print(f"redfish-racklet: {problem}", file=sys.stderr)
        return 1
    if not is_initialized(state_dir):
        rc = init(state_dir)
        if rc:
            return rc
    try:
        return serve(state_dir, args.bind, args.port, args.manifest and os.path.abspath(args.manifest),
                     args.workers, require_client_cert=args.require_client_cert, sse_port=args.sse_port,
                     metrics_port=args.metrics_port, metrics_bind=args.metrics_bind,
                     metrics_client_cert=args.metrics_client_cert)
    except (StateDirBusy, RuntimeError) as e:
        print(f"redfish-racklet: {e}", file=sys.stderr)
        return 1


def _agent(args) -> int:
    from .agent.main import main as agent_main
    from .manifest import ManifestError, load

    try:
        manifest = load(args.manifest)
    except ManifestError as e:
        print(f"redfish-racklet agent: {e}", file=sys.stderr)
        return 2
    return agent_main(os.path.abspath(args.state_dir), manifest)


SIM_HELP = """\
change the running simulated rack, as a hand at the rack would:
  plug UNIT            slide a unit into its tray
  unplug UNIT          pull it out (its rail goes off; its desired power state is kept)
  load UNIT FRACTION   set its CPU load, 0 (idle, ~2.7 W) to 1 (busy, ~6.6 W)
  fail UNIT PART       make a part stop answering: power, temperature (or: fail Rack fan)
  heal UNIT PART       make it answer again
  heat UNIT CELSIUS    add 0..60 °C to a unit's board temperature at once (or: heat Rack C, the air)"""


def _sim(args) -> int:
    from .agent import client

    value = args.value
    if args.op in ("load", "fail", "heal", "heat") and value is None:
        print(f"redfish-racklet sim {args.op}: give a "
              f"{ {'load': 'FRACTION', 'heat': 'CELSIUS'}.get(args.op, 'PART')}",
              file=sys.stderr)
        return 2
    if args.op == "load":
        try:
            value = float(value)
        except ValueError:
            print(f"redfish-racklet sim load: {value!r} is not a number", file=sys.stderr)
            return 2
    try:
        reply = client.sim_command(os.path.abspath(args.state_dir), args.op, args.unit, value)
    except OSError as e:
        print(f"redfish-racklet sim: no running agent in {args.state_dir} ({e.strerror or e}); "
              "start it with `redfish-racklet serve`", file=sys.stderr)
        return 1
    if reply.get("state") != "done":
        print(f"redfish-racklet sim {args.op} {args.unit}: {reply.get('message')}", file=sys.stderr)
        return 1
    return 0


def _factory_reset(args) -> int:
    import time

    from . import factory
    from .agent import FACTORY_RESET, FACTORY_RESET_TIMEOUT, SOCKET_NAME, client
    from .store import Store

    state_dir = os.path.abspath(args.state_dir)
    if not is_initialized(state_dir):
        print(f"redfish-racklet: {state_dir} is not a state directory", file=sys.stderr)
        return 1
    if not args.yes:
        if not sys.stdin.isatty():
            print("redfish-racklet factory-reset: give --yes to confirm (it forgets every account, "
                  "setting, log and certificate of the rack)", file=sys.stderr)
            return 2
        answer = input(f"Factory reset the rack in {state_dir}: units off, every account, setting, log "
                       "and certificate replaced. Type 'reset' to go on: ")
        if answer.strip() != "reset":
            print("redfish-racklet: nothing was changed", file=sys.stderr)
            return 1
    t0 = time.monotonic()
    store = Store(os.path.join(state_dir, DB_NAME))
    if os.path.exists(os.path.join(state_dir, SOCKET_NAME)):
        try:  # a running rack: its agent powers the units down first, then resets
            result = client.run_command(store, state_dir, "RMC", FACTORY_RESET, timeout=FACTORY_RESET_TIMEOUT)
            path = result["message"]
        except client.AgentUnavailable as e:
            print(f"redfish-racklet factory-reset: {e}; nothing was changed", file=sys.stderr)
            return 1
    else:  # nothing runs: no rail is held, so nothing to power down
        path = factory.reset(state_dir, store)
    print(f"redfish-racklet: factory reset done in {time.monotonic() - t0:.1f} s: every unit is off; new CA "
          f"{os.path.join(state_dir, 'ca.pem')}; the new 'admin' password is in {path}")
    return 0


def _keys(args) -> int:
    """``keys list`` / ``keys add PUBKEY.pem`` / ``keys remove KEYID``: the rack's trusted
    bundle signing keys, in the store (the same list as UpdateService Oem.Racklet.SigningKeys)."""
    import time

    from . import bundle
    from .store import Store

    state_dir = os.path.abspath(args.state_dir)
    if not is_initialized(state_dir):
        print(f"redfish-racklet keys: {state_dir} is not initialised; run `redfish-racklet init`", file=sys.stderr)
        return 1
    store = Store(os.path.join(state_dir, DB_NAME))
    if args.op == "list":
        for k in store.signing_keys():
            print(f"{k['id']}  {time.strftime('%Y-%m-%d', time.gmtime(k['added']))}  {k['comment']}")
        return 0
    if not args.what:
        print(f"redfish-racklet keys {args.op}: give a {'PUBKEY.pem' if args.op == 'add' else 'KEYID'}",
              file=sys.stderr)
        return 2
    if args.op == "remove":
        if not store.remove_signing_key(args.what):
            print(f"redfish-racklet keys remove: no trusted key {args.what!r} (see `redfish-racklet keys list`)",
                  file=sys.stderr)
            return 1
        print(f"redfish-racklet: key {args.what} is no longer trusted")
        return 0
    try:
        with open(args.what, encoding="ascii") as f:
            pem = f.read(8192)
        kid = bundle.key_id(bundle.load_public_key(pem))
    except (OSError, UnicodeDecodeError) as e:
        print(f"redfish-racklet keys add: cannot read {args.what}: {e}", file=sys.stderr)
        return 1
    except bundle.BundleError as e:
        print(f"redfish-racklet keys add: {args.what}: {e.message}", file=sys.stderr)
        return 1
    if not store.add_signing_key(kid, pem.strip() + "\n", args.comment, time.time()):
        print(f"redfish-racklet keys add: key {kid} is already trusted, or the rack holds the most keys it "
              "may (16)", file=sys.stderr)
        return 1
    print(f"redfish-racklet: key {kid} is trusted: bundles it signs can be installed")
    return 0


def _cert(args) -> int:
    """``cert issue NAME`` / ``cert revoke SERIAL|NAME`` / ``cert list`` (see mtls.py)."""
    import time

    from . import mtls, pki
    from .auth import Audit
    from .store import Store

    state_dir = os.path.abspath(args.state_dir)
    if not is_initialized(state_dir):
        print(f"redfish-racklet cert: {state_dir} is not initialised; run `redfish-racklet init`", file=sys.stderr)
        return 1
    store = Store(os.path.join(state_dir, DB_NAME))
    if args.op == "list":
        for serial, rec in sorted(mtls.issued(store).items(), key=lambda kv: kv[1]["not_after"]):
            state = "revoked" if rec["revoked"] else "expired" if rec["not_after"] <= time.time() else "valid"
            print(f"{serial}  {rec['name']}  {time.strftime('%Y-%m-%d', time.gmtime(rec['not_after']))}  {state}")
        return 0
    if args.op == "revoke":
        done = mtls.revoke(store, args.what)
        if not done:
            print(f"redfish-racklet cert revoke: no valid certificate has serial or account {args.what!r} "
                  "(see `redfish-racklet cert list`)", file=sys.stderr)
            return 1
        for serial, name in done:
            Audit(store).write("UserCertificateRemoved", [name])
            print(f"redfish-racklet: revoked certificate {serial} of {name!r}")
        return 0
    acct = store.account_by_name(args.what)
    if acct is None:
        print(f"redfish-racklet cert issue: there is no account {args.what!r}; create it first (its role is "
              "the account's RoleId), then issue its certificate", file=sys.stderr)
        return 1
    if not 1 <= args.days <= pki.MAX_CLIENT_DAYS:
        print(f"redfish-racklet cert issue: --days must be 1..{pki.MAX_CLIENT_DAYS}", file=sys.stderr)
        return 2
    pki.ensure_client_ca(state_dir)
    cert, cert_pem, key_pem = pki.issue_client_cert(state_dir, args.what, args.days, mtls.upn_domain(store))
    cert_path, key_path = pki.write_client_files(args.out, args.what, cert_pem, key_pem)
    serial = mtls.record_issued(store, cert, args.what)
    Audit(store).write("UserCertificateAdded", [args.what])
    print(f"redfish-racklet: certificate {serial} for {args.what!r} ({acct['role_id']}) until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}: {cert_path}, key {key_path} (keep it secret)")
    return 0


BUNDLE_KEY = "signing-key.pem"
BUNDLE_PUBLIC_KEY = "signing-key.pub.pem"


def _bundle_keygen(args) -> int:
    """Write a new signing key pair; never over an existing key (it may sign released bundles)."""
    from . import bundle

    private_path = os.path.join(args.out, BUNDLE_KEY)
    public_path = os.path.join(args.out, BUNDLE_PUBLIC_KEY)
    for path in (private_path, public_path):
        if os.path.lexists(path):
            print(f"redfish-racklet bundle keygen: {path} exists; not overwriting a signing key", file=sys.stderr)
            return 1
    private_pem, public_pem = bundle.generate_key()
    os.makedirs(args.out, mode=0o700, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    with open(public_path, "xb") as f:
        f.write(public_pem)
    kid = bundle.key_id(bundle.load_public_key(public_pem))
    print(f"redfish-racklet: signing key {kid}: {private_path} (keep it secret), public key {public_path}")
    return 0


def _bundle_create(args) -> int:
    from . import bundle

    m = bundle.create(args.payload, args.out, component=args.component, compatible=args.compatible,
                      version=args.bundle_version, security_version=args.security_version)
    print(f"redfish-racklet: wrote unsigned bundle {args.out} ({m.component} {m.version}, {m.size} bytes, "
          f"sha256 {m.sha256}); sign it with `redfish-racklet bundle sign`")
    return 0


def _bundle_sign(args) -> int:
    from . import bundle

    with open(args.key, "rb") as f:
        private_pem = f.read()
    m = bundle.sign(args.bundle, private_pem)
    print(f"redfish-racklet: signed {args.bundle} ({m.component} {m.version}) with key {m.key_id}")
    return 0


def _bundle_verify(args) -> int:
    import json

    from . import bundle

    trusted = {}
    for path in args.key:
        with open(path, "rb") as f:
            key = bundle.load_public_key(f.read())
        trusted[bundle.key_id(key)] = key
    manifest = bundle.verify_file(args.bundle, trusted, bundle.SIZE_MAX)
    print(json.dumps(manifest.to_dict(), indent=2))
    return 0


def _bundle(args) -> int:
    """``bundle keygen|create|sign|verify`` (see bundle.py); a refused bundle exits 1 with its reason."""
    from .bundle import BundleError

    run = {"keygen": _bundle_keygen, "create": _bundle_create, "sign": _bundle_sign,
           "verify": _bundle_verify}[args.op]
    try:
        return run(args)
    except BundleError as e:
        print(f"redfish-racklet: {e.reason}: {e.message}", file=sys.stderr)
    except OSError as e:
        print(f"redfish-racklet: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
    return 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redfish-racklet",
        description="The Redfish service of a Racklet rack: run it on the Rack Management "
                    "Controller, or on a laptop with a simulated rack.")
    p.add_argument("--version", action="version", version=f"redfish-racklet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def state(sp):
        sp.add_argument("--state-dir", default=default_state_dir(),
                        help="state directory (default: %(default)s)")

    sp = sub.add_parser("init", help="create a state directory: CA, certificates, store, admin account")
    state(sp)
    sp.add_argument("--admin-password-file", metavar="FILE",
                    help="read the admin password from FILE instead of generating one")

    sp = sub.add_parser("serve", help="run the rack agent and the HTTPS Redfish API")
    state(sp)
    sp.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    sp.add_argument("--port", type=int, default=8443, help="HTTPS port (default: %(default)s)")
    sp.add_argument("--manifest", metavar="FILE",
                    help="rack manifest (YAML); default: the simulated 5-unit rack")
    sp.add_argument("--workers", type=int, default=2, help="API worker processes (default: %(default)s)")
    sp.add_argument("--require-client-cert", action="store_true",
                    help="refuse TLS handshakes without a client certificate of the rack's client CA")
    sp.add_argument("--sse-port", type=int, default=None,
                    help="HTTPS port of the Server-Sent Events stream (default: --port + 1; 0: none)")
    sp.add_argument("--metrics-port", type=int, default=None,
                    help="HTTPS port of the OpenMetrics endpoint /metrics (default: --port + 2; 0: none)")
    sp.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDRESS",
                    help="address of the metrics endpoint (default: %(default)s; any other address requires "
                         "a client certificate from `cert issue`)")
    sp.add_argument("--metrics-client-cert", action="store_true",
                    help="require a client certificate for /metrics on loopback too")

    sp = sub.add_parser("cert", help="client certificates (mTLS): issue one for an account, revoke, list")
    state(sp)
    sp.add_argument("op", choices=["issue", "revoke", "list"])
    sp.add_argument("what", nargs="?", metavar="NAME|SERIAL",
                    help="issue: the account's user name; revoke: a serial or a user name (all its certificates)")
    sp.add_argument("--days", type=int, default=365, help="issue: validity in days (default: %(default)s)")
    sp.add_argument("--out", default=".", metavar="DIR",
                    help="issue: where to write NAME.pem and NAME-key.pem (default: the current directory)")

    sp = sub.add_parser("keys", help="the signing keys whose firmware bundles the rack installs: list, add, remove")
    state(sp)
    sp.add_argument("op", choices=["list", "add", "remove"])
    sp.add_argument("what", nargs="?", metavar="PUBKEY.pem|KEYID",
                    help="add: an Ed25519 public key (PEM, from `bundle keygen`); remove: its key id")
    sp.add_argument("--comment", default="", help="add: whose key this is")

    sp = sub.add_parser("sim", help="change the running simulated rack (plug, unplug, load, fail, heal)",
                        description=SIM_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    state(sp)
    sp.add_argument("op", choices=["plug", "unplug", "load", "fail", "heal", "heat"])
    sp.add_argument("unit", metavar="UNIT", help="unit id, e.g. Unit3 (Rack for the fan)")
    sp.add_argument("value", nargs="?", metavar="VALUE", help="load fraction, the part that fails, or °C of heat")

    sp = sub.add_parser("factory-reset", help="power the units down and forget every account, setting, "
                        "log and certificate: a new rack identity (between two classes)")
    state(sp)
    sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    sp = sub.add_parser("bundle", help="signed update bundles: make a signing key, create, sign, verify")
    bundle_ops = sp.add_subparsers(dest="op", required=True, metavar="OP")
    op = bundle_ops.add_parser("keygen", help=f"write a new Ed25519 signing key: DIR/{BUNDLE_KEY} and "
                                             f"DIR/{BUNDLE_PUBLIC_KEY}")
    op.add_argument("--out", required=True, metavar="DIR", help="where to write the key pair")
    op = bundle_ops.add_parser("create", help="write an unsigned bundle of a payload file")
    op.add_argument("payload", metavar="PAYLOAD", help="the firmware image")
    op.add_argument("--out", required=True, metavar="BUNDLE", help="the bundle file to write")
    op.add_argument("--component", required=True, help="rmc, bmc or boot")
    op.add_argument("--compatible", required=True, action="append", metavar="HARDWARE_ID",
                    help="hardware id the payload runs on, e.g. racklet-sim (repeat for several)")
    op.add_argument("--version", required=True, dest="bundle_version", metavar="VERSION",
                    help="the payload's version, e.g. 1.2.0")
    op.add_argument("--security-version", required=True, type=int, metavar="N",
                    help="the rack refuses bundles below its floor (rollback protection)")
    op = bundle_ops.add_parser("sign", help="sign a bundle in place (replaces an earlier signature)")
    op.add_argument("bundle", metavar="BUNDLE")
    op.add_argument("--key", required=True, metavar="FILE", help=f"the private key ({BUNDLE_KEY})")
    op = bundle_ops.add_parser("verify", help="check a bundle's signature and payload; print its manifest")
    op.add_argument("bundle", metavar="BUNDLE")
    op.add_argument("--key", required=True, action="append", metavar="FILE",
                    help=f"a trusted public key ({BUNDLE_PUBLIC_KEY}); repeat for several")

    sp = sub.add_parser("install", help="set the service up under systemd on a Debian / Raspberry Pi OS RMC "
                        "(as root): user, groups, /etc, state directory, units (docs/deployment.md)")
    sp.add_argument("--root", default="/", metavar="DIR",
                    help="install into another filesystem root (no users, ownership or systemctl then)")
    sp.add_argument("--prefix", default=None, metavar="VENV",
                    help="the virtualenv whose programs the units run (default: the one running this command)")
    sp.add_argument("--manifest", metavar="FILE",
                    help="rack manifest for /etc/redfish-racklet/manifest.yaml (default: the simulated rack)")
    sp.add_argument("--admin-password-file", metavar="FILE",
                    help="read the admin password from FILE instead of generating one")
    sp.add_argument("--deploy-dir", metavar="DIR", help="the units and gunicorn.conf.py (default: the ones "
                    "shipped with this package)")
    sp.add_argument("--dry-run", action="store_true", help="print what it would do, do nothing")

    sp = sub.add_parser("agent", help="run only the rack agent (serve starts it for you)")
    state(sp)
    sp.add_argument("--manifest", metavar="FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "init":
        return init(os.path.abspath(args.state_dir), args.admin_password_file)
    if args.command == "serve":
        if args.workers < 1 or not 0 < args.port < 65536:
            print("redfish-racklet: --workers must be >= 1 and --port 1..65535", file=sys.stderr)
            return 2
        for name in ("sse_port", "metrics_port"):
            value = getattr(args, name)
            if value is not None and not 0 <= value < 65536:
                print(f"redfish-racklet: --{name.replace('_', '-')} must be 0..65535", file=sys.stderr)
                return 2
        return _serve(args)
    if args.command == "sim":
        return _sim(args)
    if args.command == "factory-reset":
        return _factory_reset(args)
    if args.command == "cert":
        if args.op != "list" and not args.what:
            print(f"redfish-racklet cert {args.op}: give a {'NAME' if args.op == 'issue' else 'SERIAL or NAME'}",
                  file=sys.stderr)
            return 2
        return _cert(args)
    if args.command == "bundle":
        return _bundle(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "install":
        from .install import install
        return install(args.root, args.prefix, args.manifest, args.admin_password_file, args.dry_run,
                       args.deploy_dir)
    return _agent(args)
