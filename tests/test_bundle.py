"""Signed update bundles (redfish_racklet/bundle.py and `redfish-racklet bundle`): round trips,
and every attack refused with its reason before a payload byte reaches the sink."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redfish_racklet import bundle
from redfish_racklet.bundle import BundleError, Manifest, Verifier

from .conftest import cli

MIB = 1 << 20
FIELDS = {"component": "boot", "compatible": ["racklet-sim", "raspberrypi-4"], "version": "1.2.0",
          "security_version": 3}


# --- helpers ---------------------------------------------------------------------------------

class Key:
    """A signing key as the tests need it: PEMs, the key objects, its id, a trusted-keys dict."""

    def __init__(self) -> None:
        self.private_pem, self.public_pem = bundle.generate_key()
        self.private = serialization.load_pem_private_key(self.private_pem, password=None)
        self.public = bundle.load_public_key(self.public_pem)
        self.id = bundle.key_id(self.public)
        self.trusted = {self.id: self.public}


@pytest.fixture(scope="module")
def key() -> Key:
    return Key()


@pytest.fixture(scope="module")
def other_key() -> Key:
    return Key()


def payload_of(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating bytes (a repeated pattern could hide an offset bug)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def make(tmp_path: Path, payload: bytes, key: Key | None, name: str = "b.rb", **fields) -> Path:
    """A bundle file made with the module's own create (and sign, given a key)."""
    src = tmp_path / (name + ".payload")
    src.write_bytes(payload)
    out = tmp_path / name
    bundle.create(str(src), str(out), **{**FIELDS, **fields})
    if key is not None:
        bundle.sign(str(out), key.private_pem)
    return out


def header_for(payload: bytes, kid: str) -> dict:
    return {"component": "boot", "compatible": ["racklet-sim"], "version": "2.0.0", "security_version": 1,
            "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "key_id": kid}


def raw(header: dict | bytes, payload: bytes, private: Ed25519PrivateKey | None) -> bytes:
    """A bundle built by hand from the format description, independent of the module's writer,
    so crafted headers can be *properly signed* and must be refused for what they say."""
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    head = b"RKLTBNDL" + bytes([1, 0, 0, 0]) + struct.pack(">I", len(body)) + body
    return head + (private.sign(head) if private else bytes(64)) + payload


def head_len(data: bytes) -> int:
    """Prefix + header + signature of a bundle's bytes."""
    return 16 + struct.unpack(">I", data[12:16])[0] + 64


def feed(data: bytes, trusted: dict, max_size: int, step: int) -> tuple[Manifest, bytes]:
    received = bytearray()
    v = Verifier(trusted, max_size, sink=received.extend)
    for i in range(0, len(data), step):
        v.feed(data[i:i + step])
    manifest = v.finish()
    assert v.payload_bytes == len(received)
    return manifest, bytes(received)


def refused(data: bytes, trusted: dict, max_size: int = 1 << 30, step: int = 4096) -> tuple[BundleError, bytes]:
    """Feed and finish; the error raised, and whatever reached the sink before it."""
    received = bytearray()
    v = Verifier(trusted, max_size, sink=received.extend)
    with pytest.raises(BundleError) as info:
        for i in range(0, len(data), step):
            v.feed(data[i:i + step])
        v.finish()
    assert info.value.message and info.value.reason in BundleError.REASONS
    return info.value, bytes(received)


def refused_before_payload(data: bytes, trusted: dict, reason: str, **kw) -> BundleError:
    for step in (1, 7, 4096, len(data) or 1):
        error, received = refused(data, trusted, step=step, **kw)
        assert error.reason == reason, (step, error)
        assert received == b"", step
    return error


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("step,size", [(1, 3000), (7, 100_000), (MIB, 3 * MIB + 5)])
def test_round_trip_in_chunks(tmp_path, key, step, size):
    payload = payload_of(size)
    data = make(tmp_path, payload, key).read_bytes()
    manifest, received = feed(data, key.trusted, max_size=size, step=step)
    assert received == payload
    assert manifest.sha256 == hashlib.sha256(payload).hexdigest()
    assert manifest.size == size and manifest.key_id == key.id
    assert manifest.to_dict() == {**FIELDS, "size": size, "sha256": manifest.sha256, "key_id": key.id}
    assert manifest.compatible == tuple(FIELDS["compatible"])


def test_file_round_trip_and_read_header(tmp_path, key):
    payload = payload_of(2 * MIB + 17, seed=1)
    path = make(tmp_path, payload, None)
    unsigned, signed = bundle.read_header(str(path))
    assert not signed and unsigned.key_id == "0" * 16
    assert unsigned.sha256 == hashlib.sha256(payload).hexdigest()
    signed_manifest = bundle.sign(str(path), key.private_pem)
    assert bundle.read_header(str(path)) == (signed_manifest, True)
    assert bundle.verify_file(str(path), key.trusted, len(payload)) == signed_manifest
    chunks = list(bundle.verified_payload(str(path), key.trusted, len(payload), chunk=MIB))
    assert b"".join(chunks) == payload
    assert max(len(c) for c in chunks) == MIB  # payload reads stay aligned to the chunk size


def test_empty_payload(tmp_path, key):
    path = make(tmp_path, b"", key)
    manifest = bundle.verify_file(str(path), key.trusted, 0)
    assert manifest.size == 0 and manifest.sha256 == hashlib.sha256(b"").hexdigest()
    assert list(bundle.verified_payload(str(path), key.trusted, 0)) == []


def test_resigning_replaces_the_key(tmp_path, key, other_key):
    path = make(tmp_path, payload_of(5000), key)
    mode = 0o640
    os.chmod(path, mode)
    manifest = bundle.sign(str(path), other_key.private_pem)
    assert manifest.key_id == other_key.id
    assert bundle.verify_file(str(path), other_key.trusted, 5000).key_id == other_key.id
    with pytest.raises(BundleError) as info:
        bundle.verify_file(str(path), key.trusted, 5000)
    assert info.value.reason == "untrusted"
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.rb", "b.rb.payload"]  # no temp left


def test_verifier_accepts_several_trusted_keys(tmp_path, key, other_key):
    data = make(tmp_path, payload_of(100), other_key).read_bytes()
    manifest, received = feed(data, {**key.trusted, **other_key.trusted}, 100, 13)
    assert received == payload_of(100) and manifest.key_id == other_key.id


# --- trust ------------------------------------------------------------------------------------

def test_unsigned_refused(tmp_path, key):
    data = make(tmp_path, payload_of(1000), None).read_bytes()
    refused_before_payload(data, key.trusted, "unsigned")


def test_key_id_without_signature_is_unsigned(key):
    payload = payload_of(1000)
    data = raw(header_for(payload, key.id), payload, None)
    refused_before_payload(data, key.trusted, "unsigned")


def test_untrusted_key_refused(tmp_path, key, other_key):
    data = make(tmp_path, payload_of(1000), other_key).read_bytes()
    error = refused_before_payload(data, key.trusted, "untrusted")
    assert other_key.id in error.message
    refused_before_payload(data, {}, "untrusted")


def test_signature_bit_flips_refused(tmp_path, key):
    data = make(tmp_path, payload_of(1000), key).read_bytes()
    start = head_len(data) - 64
    for byte in (start, start + 31, start + 63):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[byte] ^= 1 << bit
            refused_before_payload(bytes(bad), key.trusted, "signature")


def test_header_change_after_signing_refused(tmp_path, key):
    data = make(tmp_path, payload_of(1000), key).read_bytes()
    at = data.index(b'"1.2.0"') + 1
    bad = bytearray(data)
    bad[at] ^= 1  # "1.2.0" -> "0.2.0": still a valid header, no longer the signed one
    refused_before_payload(bytes(bad), key.trusted, "signature")


def test_every_head_bit_flip_refused_before_payload(tmp_path, key):
    """Whatever one flipped bit of the head turns into (bad JSON, another key id, a longer
    header_len...), the bundle is refused and no payload byte reaches the sink."""
    payload = payload_of(300)
    data = make(tmp_path, payload, key).read_bytes()
    for byte in range(head_len(data)):
        bad = bytearray(data)
        bad[byte] ^= 0x04
        error, received = refused(bytes(bad), key.trusted, step=len(bad))
        assert received == b"", (byte, error)


def test_payload_bit_flip_is_a_digest_error(tmp_path, key):
    payload = payload_of(10_000)
    data = make(tmp_path, payload, key).read_bytes()
    bad = bytearray(data)
    bad[head_len(data) + 5000] ^= 0x80
    received = bytearray()
    v = Verifier(key.trusted, len(payload), sink=received.extend)
    v.feed(bytes(bad))  # the digest can only be known at the end...
    with pytest.raises(BundleError) as info:
        v.finish()       # ...and there it is refused
    assert info.value.reason == "digest"
    assert hashlib.sha256(payload).hexdigest() in info.value.message


def test_mixed_header_and_payload_is_a_digest_error(tmp_path, key):
    x = make(tmp_path, payload_of(4000, seed=1), key, name="x.rb").read_bytes()
    y = make(tmp_path, payload_of(4000, seed=2), key, name="y.rb").read_bytes()
    mixed = x[:head_len(x)] + y[head_len(y):]
    error, _ = refused(mixed, key.trusted)
    assert error.reason == "digest"
    path = tmp_path / "mixed.rb"
    path.write_bytes(mixed)
    with pytest.raises(BundleError) as info:
        bundle.verify_file(str(path), key.trusted, 4000)
    assert info.value.reason == "digest"


def test_verified_payload_raises_before_returning(tmp_path, key):
    payload = payload_of(3 * MIB)
    path = make(tmp_path, payload, key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    copied = bytearray()
    with pytest.raises(BundleError) as info:
        for chunk in bundle.verified_payload(str(path), key.trusted, len(payload)):
            copied += chunk
    assert info.value.reason == "digest"
    assert len(copied) == len(payload)  # every chunk was yielded, and still the loop did not end quietly


def test_verifier_errors_are_sticky(tmp_path, key, other_key):
    data = make(tmp_path, payload_of(100), other_key).read_bytes()
    v = Verifier(key.trusted, 100)
    with pytest.raises(BundleError):
        v.feed(data)
    for call in (lambda: v.feed(b"x"), v.finish):
        with pytest.raises(BundleError) as info:
            call()
        assert info.value.reason == "untrusted"
    assert v.manifest is None and v.payload_bytes == 0


def test_verifier_refuses_inconsistent_trusted_keys(key, other_key):
    with pytest.raises(ValueError):
        Verifier({key.id: other_key.public}, 100)
    with pytest.raises(ValueError):
        Verifier(key.trusted, -1)


# --- sizes and truncation ---------------------------------------------------------------------

def test_truncated_at_every_part(tmp_path, key):
    payload = payload_of(5000)
    data = make(tmp_path, payload, key).read_bytes()
    head = head_len(data)
    cuts = {"empty": 0, "magic": 5, "prefix": 15, "header start": 16, "header middle": 40,
            "signature start": head - 64, "signature middle": head - 30, "signature end": head - 1,
            "payload start": head, "payload middle": head + 2500, "payload end": len(data) - 1}
    for where, cut in cuts.items():
        for step in (1, 4096):
            error, received = refused(data[:cut], key.trusted, step=step)
            assert error.reason == "truncated", (where, error)
            assert len(received) == max(0, cut - head), where
            assert received == payload[:len(received)]
        path = tmp_path / "cut.rb"
        path.write_bytes(data[:cut])
        with pytest.raises(BundleError) as info:
            bundle.verify_file(str(path), key.trusted, len(payload))
        assert info.value.reason == "truncated", where


def test_trailing_data_refused_at_once(tmp_path, key):
    payload = payload_of(2000)
    data = make(tmp_path, payload, key).read_bytes()
    v = Verifier(key.trusted, len(payload))
    v.feed(data)
    with pytest.raises(BundleError) as info:
        v.feed(b"\0")  # refused on arrival, not at finish()
    assert info.value.reason == "oversize"
    error, received = refused(data + b"more", key.trusted, step=len(data) + 4)
    assert error.reason == "oversize" and received == b""
    path = tmp_path / "long.rb"
    path.write_bytes(data + b"x")
    with pytest.raises(BundleError) as info:
        bundle.verify_file(str(path), key.trusted, len(payload))
    assert info.value.reason == "oversize"


def test_endless_data_is_refused_with_bounded_memory(key):
    size, chunk = 3 * MIB, 64 * 1024
    payload = payload_of(size)
    head = raw(header_for(payload, key.id), b"", key.private)
    consumed = 0
    sunk = 0

    def count(data) -> None:
        nonlocal sunk
        sunk += len(data)

    def endless():
        nonlocal consumed
        yield head
        block = payload_of(chunk, seed=9)
        while True:
            consumed += chunk
            yield block

    v = Verifier(key.trusted, max_size=size, sink=count)
    tracemalloc.start()
    try:
        with pytest.raises(BundleError) as info:
            for data in endless():
                v.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "oversize"
    assert size < consumed <= size + chunk  # it stopped at the first chunk beyond the size
    assert sunk == v.payload_bytes <= size
    assert peak < 256 * 1024  # nothing of the payload is kept


def test_declared_size_above_max_refused_before_payload(key):
    payload = payload_of(1000)
    data = raw(header_for(payload, key.id), payload, key.private)
    refused_before_payload(data, key.trusted, "oversize", max_size=999)
    assert feed(data, key.trusted, 1000, 100)[1] == payload  # exactly max_size is fine
    # a header claiming a terabyte is refused right after the header, before its signature
    huge = {**header_for(payload, key.id), "size": 2**40}
    prefix_and_header = raw(huge, b"", key.private)[:-64]
    v = Verifier(key.trusted, max_size=MIB)
    with pytest.raises(BundleError) as info:
        v.feed(prefix_and_header)
    assert info.value.reason == "oversize"


# --- format -----------------------------------------------------------------------------------

def prefix(magic=b"RKLTBNDL", version=1, reserved=b"\0\0\0", header_len=10) -> bytes:
    return magic + bytes([version]) + reserved + struct.pack(">I", header_len)


@pytest.mark.parametrize("bad", [
    prefix(header_len=0), prefix(header_len=bundle.HEADER_MAX + 1), prefix(header_len=2**32 - 1),
    prefix(magic=b"RKLTBNDX"), prefix(version=2), prefix(version=0), prefix(reserved=b"\0\1\0"),
])
def test_bad_prefix_refused_within_the_prefix(key, bad):
    assert len(bad) == 16
    Verifier(key.trusted, 100).feed(prefix())  # the same prefix with good values is no error
    for step in (1, 16):
        v = Verifier(key.trusted, 100)
        with pytest.raises(BundleError) as info:
            for i in range(0, 16, step):
                v.feed(bad[i:i + step])
        assert info.value.reason == "format"


def test_garbage_refused_at_its_first_byte(key):
    v = Verifier(key.trusted, 100)
    v.feed(b"RKLT")  # a good start is not refused
    with pytest.raises(BundleError) as info:
        v.feed(b"X")
    assert info.value.reason == "format"
    with pytest.raises(BundleError) as info:
        Verifier(key.trusted, 100).feed(b"P")
    assert info.value.reason == "format"


def test_header_len_at_the_maximum_is_read(key):
    payload = payload_of(10)
    body = json.dumps(header_for(payload, key.id)).encode()
    body += b" " * (bundle.HEADER_MAX - len(body))
    assert feed(raw(body, payload, key.private), key.trusted, 10, 500)[1] == payload


def good(key, **change) -> dict:
    return {**header_for(payload_of(50), key.id), **change}


BAD_HEADERS = {
    "unknown key": lambda k: {**good(k), "extra": 1},
    "missing key": lambda k: {x: v for x, v in good(k).items() if x != "sha256"},
    "bool security_version": lambda k: good(k, security_version=True),
    "bool size": lambda k: good(k, size=False),
    "float size": lambda k: good(k, size=50.0),
    "string size": lambda k: good(k, size="50"),
    "negative security_version": lambda k: good(k, security_version=-1),
    "too large security_version": lambda k: good(k, security_version=2**31),
    "size above 2**40": lambda k: good(k, size=2**40 + 1),
    "bad component": lambda k: good(k, component="bios"),
    "component not a string": lambda k: good(k, component=["boot"]),
    "compatible a string": lambda k: good(k, compatible="racklet-sim"),
    "compatible empty": lambda k: good(k, compatible=[]),
    "compatible too many": lambda k: good(k, compatible=[f"hw{i}" for i in range(17)]),
    "compatible bad id": lambda k: good(k, compatible=["racklet sim"]),
    "compatible not strings": lambda k: good(k, compatible=[1]),
    "compatible id too long": lambda k: good(k, compatible=["a" * 65]),
    "version bad": lambda k: good(k, version="1.0 beta"),
    "version too long": lambda k: good(k, version="1" * 33),
    "version a number": lambda k: good(k, version=1),
    "sha256 uppercase": lambda k: good(k, sha256=hashlib.sha256(payload_of(50)).hexdigest().upper()),
    "sha256 short": lambda k: good(k, sha256="ab" * 31),
    "key_id short": lambda k: good(k, key_id=k.id[:15]),
    "key_id uppercase": lambda k: good(k, key_id=k.id.upper()),
    "not an object": lambda k: [good(k)],
    "non-ASCII hardware id": lambda k: good(k, compatible=["racklet-sïm"]),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_bad_header_refused_even_when_signed(key, case):
    header = BAD_HEADERS[case](key)
    data = raw(header, payload_of(50), key.private)
    error = refused_before_payload(data, key.trusted, "format")
    assert error.message


@pytest.mark.parametrize("body", [
    b'{"component": "boot", "component": "boot"}',
    b"not json", b"{", b'{"size": NaN}', b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000, b"null",
    b'{"size": 1' + b"0" * 5000 + b"}",
], ids=["duplicate key", "not json", "unclosed", "NaN", "not UTF-8", "deep nesting", "null", "huge int"])
def test_malformed_json_refused(key, body):
    refused_before_payload(raw(body, b"", key.private), key.trusted, "format")


def test_duplicate_key_with_good_values_refused(key):
    header = good(key)
    body = json.dumps(header)[:-1] + ', "size": ' + str(header["size"]) + "}"
    error = refused_before_payload(raw(body.encode(), payload_of(50), key.private), key.trusted, "format")
    assert "size" in error.message


@pytest.mark.parametrize("change", [
    {"component": "bios"}, {"compatible": []}, {"compatible": "racklet-sim"}, {"compatible": ["bad id"]},
    {"version": ""}, {"security_version": True}, {"security_version": -1}, {"security_version": 3.0},
])
def test_create_refuses_bad_fields(tmp_path, change):
    src = tmp_path / "p"
    src.write_bytes(b"payload")
    with pytest.raises(BundleError) as info:
        bundle.create(str(src), str(tmp_path / "out.rb"), **{**FIELDS, **change})
    assert info.value.reason == "format"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # nothing written, no temp left


def test_create_refuses_what_is_not_a_regular_file(tmp_path):
    """A device or pipe has no size to put in the header before the payload is read."""
    with pytest.raises(BundleError) as info:
        bundle.create(os.devnull, str(tmp_path / "out.rb"), **FIELDS)
    assert info.value.reason == "format" and os.devnull in info.value.message
    with pytest.raises(IsADirectoryError):
        bundle.create(str(tmp_path), str(tmp_path / "out.rb"), **FIELDS)
    assert list(tmp_path.iterdir()) == []


def test_sign_refuses_a_corrupt_payload_and_keeps_the_file(tmp_path, key):
    path = make(tmp_path, payload_of(3000), None)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError) as info:
        bundle.sign(str(path), key.private_pem)
    assert info.value.reason == "digest"
    assert path.read_bytes() == bytes(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.rb", "b.rb.payload"]


def test_read_header_refuses_bad_files(tmp_path, key):
    path = tmp_path / "x.rb"
    for content, reason in ((b"", "truncated"), (b"RKLTBN", "truncated"), (b"hello world, I am not a bundle",
                            "format"), (raw(good(key), b"", key.private)[:-1], "truncated")):
        path.write_bytes(content)
        with pytest.raises(BundleError) as info:
            bundle.read_header(str(path))
        assert info.value.reason == reason, content


# --- keys -------------------------------------------------------------------------------------

def rsa_pems() -> tuple[bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def test_key_id_is_the_hash_of_the_raw_key(key):
    raw_key = key.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert len(raw_key) == 32
    assert key.id == hashlib.sha256(raw_key).hexdigest()[:16]
    assert bundle.load_public_key(key.public_pem.decode()).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw_key


def test_bad_key_pems_refused(tmp_path, key):
    rsa_private, rsa_public = rsa_pems()
    for pem in (rsa_public, b"garbage", b"", key.private_pem, "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                "-----END PUBLIC KEY-----\n"):
        with pytest.raises(BundleError) as info:
            bundle.load_public_key(pem)
        assert info.value.reason == "format", pem
    path = make(tmp_path, b"abc", None)
    before = path.read_bytes()
    for pem in (rsa_private, b"garbage", key.public_pem):
        with pytest.raises(BundleError) as info:
            bundle.sign(str(path), pem)
        assert info.value.reason == "format"
    assert path.read_bytes() == before


def test_bundle_error_carries_reason_and_message():
    e = BundleError("digest", "the payload changed")
    assert (e.reason, e.message, str(e)) == ("digest", "the payload changed", "digest: the payload changed")
    with pytest.raises(ValueError):
        BundleError("nonsense", "x")


# --- CLI ----------------------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli() + ["bundle", *args], capture_output=True, text=True, timeout=60)


def test_cli_keygen_create_sign_verify(tmp_path):
    keys = tmp_path / "keys"
    r = run("keygen", "--out", str(keys))
    assert r.returncode == 0, r.stderr
    private, public = keys / "signing-key.pem", keys / "signing-key.pub.pem"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    kid = bundle.key_id(bundle.load_public_key(public.read_bytes()))
    assert kid in r.stdout

    before = private.read_bytes()
    r = run("keygen", "--out", str(keys))
    assert r.returncode == 1 and "exists" in r.stderr
    assert private.read_bytes() == before

    payload = payload_of(70_000)
    (tmp_path / "fw.img").write_bytes(payload)
    out = tmp_path / "fw.rb"
    r = run("create", str(tmp_path / "fw.img"), "--out", str(out), "--component", "boot",
            "--compatible", "racklet-sim", "--compatible", "raspberrypi-4", "--version", "1.2.0",
            "--security-version", "3")
    assert r.returncode == 0, r.stderr
    r = run("verify", str(out), "--key", str(public))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: unsigned: ")

    r = run("sign", str(out), "--key", str(private))
    assert r.returncode == 0, r.stderr
    r = run("verify", str(out), "--key", str(public))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"component": "boot", "compatible": ["racklet-sim", "raspberrypi-4"],
                                    "version": "1.2.0", "security_version": 3, "size": len(payload),
                                    "sha256": hashlib.sha256(payload).hexdigest(), "key_id": kid}


def test_cli_verify_failures(tmp_path, key, other_key):
    path = make(tmp_path, payload_of(1000), key)
    (tmp_path / "k.pub").write_bytes(key.public_pem)
    (tmp_path / "other.pub").write_bytes(other_key.public_pem)
    r = run("verify", str(path), "--key", str(tmp_path / "other.pub"))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: untrusted: ") and not r.stdout
    r = run("verify", str(path), "--key", str(tmp_path / "other.pub"), "--key", str(tmp_path / "k.pub"))
    assert r.returncode == 0 and json.loads(r.stdout)["key_id"] == key.id

    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    r = run("verify", str(path), "--key", str(tmp_path / "k.pub"))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: digest: ")
    path.write_bytes(bytes(data[:-1]))
    r = run("verify", str(path), "--key", str(tmp_path / "k.pub"))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: truncated: ")

    (tmp_path / "rsa.pub").write_bytes(rsa_pems()[1])
    r = run("verify", str(path), "--key", str(tmp_path / "rsa.pub"))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: format: ")
    r = run("verify", str(tmp_path / "missing.rb"), "--key", str(tmp_path / "k.pub"))
    assert r.returncode == 1 and "missing.rb" in r.stderr


def test_cli_create_and_sign_failures(tmp_path):
    (tmp_path / "fw.img").write_bytes(b"x")
    r = run("create", str(tmp_path / "fw.img"), "--out", str(tmp_path / "fw.rb"), "--component", "bios",
            "--compatible", "racklet-sim", "--version", "1.0", "--security-version", "1")
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: format: ") and "component" in r.stderr
    assert not (tmp_path / "fw.rb").exists()
    r = run("create", str(tmp_path / "fw.img"), "--out", str(tmp_path / "fw.rb"), "--component", "boot",
            "--version", "1.0", "--security-version", "1")
    assert r.returncode == 2  # --compatible is required
    (tmp_path / "garbage.pem").write_bytes(b"garbage")
    r = run("sign", str(tmp_path / "fw.img"), "--key", str(tmp_path / "garbage.pem"))
    assert r.returncode == 1 and r.stderr.startswith("redfish-racklet: format: ")
