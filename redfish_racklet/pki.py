"""The rack's key material: its CA and the HTTPS certificate it signs, the client CA
that signs users' certificates (mTLS), and the HTTPS key's replacement (CSR, new
certificate).

``redfish-racklet init`` makes a fresh CA and client CA per rack (so a factory reset
gives a new identity); clients trust ``ca.pem`` instead of turning verification off.
Every file is written whole and swapped in with ``os.replace``: the API workers pick
up a new certificate on their next connection (``server.TLSContexts``) and never see
half a file.

Files in the state directory:
  ca.pem, ca-key.pem                  the rack CA (signs server.pem)
  server.pem, server-key.pem          the HTTPS certificate (and chain) and its key
  server-key.pending.pem              the key of the last GenerateCSR, until replaced
  client-ca.pem, client-ca-key.pem    the client CA: the only trust anchor for clients
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

CA_DAYS = 3650
SERVER_DAYS = 825  # the CA/Browser Forum's old upper bound; browsers accept it
CLIENT_DAYS = 365
MAX_CLIENT_DAYS = 825

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server-key.pem"
PENDING_KEY = "server-key.pending.pem"
CLIENT_CA_CERT, CLIENT_CA_KEY = "client-ca.pem", "client-ca-key.pem"
# Microsoft's User Principal Name otherName (what CertificateMappingAttribute
# "UserPrincipalName" reads), a UTF8String.
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_private(path: str, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def _write_public(path: str, data: bytes) -> None:
    _write_atomic(path, data, 0o644)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(state_dir: str, rack_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _make_ca(state_dir, f"{rack_name} CA", CA_CERT, CA_KEY, 0o644)


def make_client_ca(state_dir: str, rack_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The CA of users' client certificates: a CA of its own, so that nothing the rack CA
    signs (the HTTPS certificate) can ever log in."""
    return _make_ca(state_dir, f"{rack_name} client CA", CLIENT_CA_CERT, CLIENT_CA_KEY, 0o600)


def ensure_client_ca(state_dir: str, rack_name: str = "Racklet") -> bool:
    """Make the client CA of a state dir initialised before mTLS existed; True if made."""
    if os.path.exists(os.path.join(state_dir, CLIENT_CA_CERT)):
        return False
    make_client_ca(state_dir, rack_name)
    return True


def _make_ca(state_dir: str, common_name: str, cert_file: str, key_file: str, cert_mode: int):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Racklet"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(os.path.join(state_dir, key_file), _key_pem(key))
    _write_atomic(os.path.join(state_dir, cert_file), cert.public_bytes(serialization.Encoding.PEM), cert_mode)
    return key, cert


def _leaf_builder(common_name: str, key, ca_key, ca_cert: x509.Certificate, days: int, usage) -> x509.CertificateBuilder:
    """What the HTTPS certificate and a client certificate share: O=Racklet and the CN,
    signed by ``ca_cert``, not a CA, digital signature only, one extended key usage."""
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Racklet"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False))


def make_server_cert(state_dir: str, ca_key, ca_cert: x509.Certificate,
                     extra_names: list[str] = ()) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    dns = sorted({"localhost", host, *[n for n in extra_names if not _is_ip(n)]})
    ips = sorted({"127.0.0.1", "::1", *[n for n in extra_names if _is_ip(n)]})
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (_leaf_builder(host, key, ca_key, ca_cert, SERVER_DAYS, ExtendedKeyUsageOID.SERVER_AUTH)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    # Key first, then certificate: a worker that sees the new key with the old
    # certificate refuses the pair and keeps its current context (server.TLSContexts).
    _write_private(os.path.join(state_dir, SERVER_KEY), _key_pem(key))
    _write_public(os.path.join(state_dir, SERVER_CERT), cert.public_bytes(serialization.Encoding.PEM))
    try:  # a new identity (init, factory reset) forgets a GenerateCSR in progress
        os.unlink(os.path.join(state_dir, PENDING_KEY))
    except FileNotFoundError:
        pass


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_certs(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())


def _load_key(path: str):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


# -- users' client certificates -----------------------------------------------------------

def _der_utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    n = len(raw)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return b"\x0c" + length + raw


def parse_der_utf8(der: bytes) -> str | None:
    """The text of a DER UTF8String, or None if ``der`` is not exactly one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    n, i = der[1], 2
    if n & 0x80:
        width = n & 0x7F
        n, i = int.from_bytes(der[2:2 + width], "big"), 2 + width
    if len(der) != i + n:
        return None
    try:
        return der[i:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def user_principal_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = (parse_der_utf8(o.value) for o in san.get_values_for_type(x509.OtherName) if o.type_id == UPN_OID)
    return [n for n in names if n]


def common_names(cert: x509.Certificate) -> list[str]:
    return [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]


def upn_simple(name: str) -> bool:
    """A name that makes a plain ``NAME@domain`` UPN (no second @, no spaces or controls)."""
    return bool(name) and "@" not in name and all(c.isprintable() and not c.isspace() for c in name)


def issue_client_cert(state_dir: str, name: str, days: int = CLIENT_DAYS,
                      upn_domain: str | None = None) -> tuple[x509.Certificate, bytes, bytes]:
    """A client certificate for the account ``name`` signed by the client CA:
    (certificate, its PEM, its private key's PEM). CN = name; with ``upn_domain``, also a
    UPN otherName ``name@upn_domain``."""
    ca_key = _load_key(os.path.join(state_dir, CLIENT_CA_KEY))
    ca_cert = load_cert(os.path.join(state_dir, CLIENT_CA_CERT))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_leaf_builder(name, key, ca_key, ca_cert, days, ExtendedKeyUsageOID.CLIENT_AUTH)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if upn_domain and upn_simple(name):
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.OtherName(UPN_OID, _der_utf8(f"{name}@{upn_domain}"))]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def write_client_files(out_dir: str, name: str, cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    cert_path, key_path = os.path.join(out_dir, f"{name}.pem"), os.path.join(out_dir, f"{name}-key.pem")
    _write_private(key_path, key_pem)
    _write_public(cert_path, cert_pem)
    return cert_path, key_path


# -- the HTTPS certificate: CSR and replacement ---------------------------------------------

# KeyPairAlgorithm / KeyCurveId use the TCG algorithm names, as the schema asks.
KEY_PAIR_ALGORITHMS = ("TPM_ALG_ECDSA", "TPM_ALG_RSA")
KEY_CURVES = {"TPM_ECC_NIST_P256": ec.SECP256R1, "TPM_ECC_NIST_P384": ec.SECP384R1}
RSA_BITS = (2048, 3072, 4096)


class CertificateProblem(ValueError):
    """A certificate the service refuses; ``reason`` says why, in a sentence."""


def generate_csr(state_dir: str, subject: dict[str, str], alt_names: list[str],
                 algorithm: str = "TPM_ALG_ECDSA", curve: str = "TPM_ECC_NIST_P256",
                 rsa_bits: int = 2048) -> str:
    """A new key for the HTTPS certificate, kept as the pending key on the server, and a
    CSR for it (PEM). ``subject``: x509 NameOID attribute name -> value."""
    if algorithm == "TPM_ALG_RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        key = ec.generate_private_key(KEY_CURVES[curve]())
    attrs = [x509.NameAttribute(getattr(NameOID, oid), value) for oid, value in subject.items()]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if alt_names:
        sans = [x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in alt_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    _write_private(os.path.join(state_dir, PENDING_KEY), _key_pem(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_pem_certificates(text: str) -> list[x509.Certificate]:
    """Every certificate of a PEM string; CertificateProblem if it holds anything else."""
    if "PRIVATE KEY" in text:
        raise CertificateProblem("the PEM holds a private key; send only certificates "
                                 "(the key stays on the service: use GenerateCSR)")
    try:
        certs = x509.load_pem_x509_certificates(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CertificateProblem("not a PEM-encoded X.509 certificate") from None
    return certs


def check_server_cert(state_dir: str, certs: list[x509.Certificate], now: dt.datetime | None = None) -> str:
    """Which key file the new HTTPS certificate ``certs[0]`` belongs to (the pending
    key of the last GenerateCSR, or the current key); CertificateProblem if it is not
    fit to serve. The chain, if any, is served as given: the service does not judge
    whom the clients trust."""
    now = now or dt.datetime.now(dt.timezone.utc)
    leaf = certs[0]
    if leaf.not_valid_after_utc <= now:
        raise CertificateProblem(f"the certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    if leaf.not_valid_before_utc > now + dt.timedelta(minutes=5):
        raise CertificateProblem(f"the certificate is not valid before {leaf.not_valid_before_utc.isoformat()}")
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CertificateProblem("the certificate is a CA certificate, not a server's")
    except x509.ExtensionNotFound:
        pass
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
            raise CertificateProblem("the certificate's extended key usage does not allow serverAuth")
    except x509.ExtensionNotFound:
        pass
    spki = _spki(leaf.public_key())
    for name in (PENDING_KEY, SERVER_KEY):
        path = os.path.join(state_dir, name)
        if os.path.exists(path) and _spki(_load_key(path).public_key()) == spki:
            return name
    raise CertificateProblem("the certificate's public key is neither the key of the last "
                             "GenerateCSR nor the current HTTPS key")


def install_server_cert(state_dir: str, certs: list[x509.Certificate], key_name: str) -> None:
    """Swap in the new HTTPS certificate (and chain): key first, then certificate, each
    atomically (see ``make_server_cert``); the pending key is then spent."""
    if key_name == PENDING_KEY:
        with open(os.path.join(state_dir, PENDING_KEY), "rb") as f:
            _write_private(os.path.join(state_dir, SERVER_KEY), f.read())
    _write_public(os.path.join(state_dir, SERVER_CERT),
                  b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    if key_name == PENDING_KEY:
        os.unlink(os.path.join(state_dir, PENDING_KEY))


# -- what a Certificate resource shows ------------------------------------------------------

_SUBJECT_FIELDS = (("CommonName", NameOID.COMMON_NAME), ("Organization", NameOID.ORGANIZATION_NAME),
                   ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
                   ("City", NameOID.LOCALITY_NAME), ("State", NameOID.STATE_OR_PROVINCE_NAME),
                   ("Country", NameOID.COUNTRY_NAME), ("Email", NameOID.EMAIL_ADDRESS))
_KEY_USAGE = (("digital_signature", "DigitalSignature"), ("content_commitment", "NonRepudiation"),
              ("key_encipherment", "KeyEncipherment"), ("data_encipherment", "DataEncipherment"),
              ("key_agreement", "KeyAgreement"), ("key_cert_sign", "KeyCertSign"),
              ("crl_sign", "CRLSigning"))
_EXTENDED_KEY_USAGE = {ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuthentication",
                       ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuthentication",
                       ExtendedKeyUsageOID.CODE_SIGNING: "CodeSigning",
                       ExtendedKeyUsageOID.EMAIL_PROTECTION: "EmailProtection",
                       ExtendedKeyUsageOID.TIME_STAMPING: "Timestamping",
                       ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning"}


def _identifier(name: x509.Name) -> dict:
    out = {}
    for prop, oid in _SUBJECT_FIELDS:
        values = name.get_attributes_for_oid(oid)
        if values:
            out[prop] = str(values[0].value)
    return out


def key_usage(cert: x509.Certificate) -> list[str]:
    usage = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        usage += [name for attr, name in _KEY_USAGE if getattr(ku, attr)]
        if ku.key_agreement:
            usage += [n for a, n in (("encipher_only", "EncipherOnly"), ("decipher_only", "DecipherOnly"))
                      if getattr(ku, a)]
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage += [_EXTENDED_KEY_USAGE[o] for o in eku if o in _EXTENDED_KEY_USAGE]
    except x509.ExtensionNotFound:
        pass
    return usage


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def certificate_facts(cert: x509.Certificate) -> dict:
    """The Certificate resource's properties that come from the certificate itself."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return {
        "CertificateString": pem(cert),
        "CertificateType": "PEM",
        "Subject": _identifier(cert.subject),
        "Issuer": _identifier(cert.issuer),
        "ValidNotBefore": cert.not_valid_before_utc.replace(microsecond=0).isoformat(),
        "ValidNotAfter": cert.not_valid_after_utc.replace(microsecond=0).isoformat(),
        "KeyUsage": key_usage(cert),
        "SerialNumber": ":".join(f"{b:02X}" for b in cert.serial_number.to_bytes(
            (cert.serial_number.bit_length() + 7) // 8 or 1, "big")),
        "Fingerprint": ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
        "FingerprintHashAlgorithm": "TPM_ALG_SHA256",
        "SignatureAlgorithm": cert.signature_algorithm_oid._name,
    }
