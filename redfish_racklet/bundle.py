"""Signed update bundles: the format, its signing, and the streaming check every consumer uses.

A bundle is a signed manifest followed by its payload. Format 1, integers big-endian::

    offset 0   MAGIC b"RKLTBNDL"                            8 bytes
    offset 8   format u8 = 1, then 3 zero bytes              4 bytes
    offset 12  header_len u32, 1..HEADER_MAX                 4 bytes
    offset 16  header: a UTF-8 JSON object (see Manifest)    header_len bytes
    then       Ed25519 signature over bytes[0:16+header_len] 64 bytes (64 zero bytes: unsigned)
    then       payload: exactly header["size"] bytes, and nothing after it

The header carries the payload's size and SHA-256, so the one signature vouches for every
byte. The API workers stream an upload through a ``Verifier``, which checks the signature
before it hashes or passes on a single payload byte; the agent re-verifies with
``verified_payload()`` while it copies into an A/B slot and aborts on the exception that
comes at the end if the digest is wrong. Nothing unsigned ever reaches a slot.

Memory stays bounded whatever the input: the head (prefix, header, signature) is at most
16 + HEADER_MAX + 64 bytes and the payload is hashed and handed on, never kept.

Pure: no Flask, no store; files are only touched by the functions that name them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import stat
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAGIC = b"RKLTBNDL"
FORMAT_VERSION = 1
PREFIX_SIZE = 16
HEADER_MAX = 8192
SIGNATURE_SIZE = 64
COMPONENTS = ("rmc", "bmc", "boot")
SIZE_MAX = 2**40
SECURITY_VERSION_MAX = 2**31 - 1
COMPATIBLE_MAX = 16
CHUNK = 1 << 20
UNSIGNED_KEY_ID = "0" * 16
HEADER_KEYS = ("component", "compatible", "version", "security_version", "size", "sha256", "key_id")

_UNSIGNED_SIGNATURE = bytes(SIGNATURE_SIZE)
_PREFIX = struct.Struct(">8sB3sI")
_HARDWARE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")

Sink = Callable[[bytes | memoryview], None]


class BundleError(Exception):
    """Why a bundle is refused.

    ``reason`` is one stable word for programs (the API maps it to a Redfish message);
    ``message`` says what is wrong for a person. Reasons: ``format``, ``unsigned``,
    ``signature``, ``untrusted``, ``oversize``, ``truncated``, ``digest``.
    """

    REASONS = ("format", "unsigned", "signature", "untrusted", "oversize", "truncated", "digest")

    def __init__(self, reason: str, message: str):
        if reason not in self.REASONS:
            raise ValueError(f"unknown bundle error reason {reason!r}")
        super().__init__(reason, message)  # both in args, so the error pickles across processes
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _show(value: object) -> str:
    """A value from an untrusted header, quoted and cut short enough for one line of a message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_error(message: str) -> BundleError:
    return BundleError("format", message)


def _check_int(name: str, value: object, maximum: int) -> None:
    """Strict: a JSON ``true`` is a bool in Python, and bool is an int subclass; refuse it."""
    if type(value) is not int or not 0 <= value <= maximum:
        raise _format_error(f"{name} must be an integer 0..{maximum}, not {_show(value)}")


def _check_text(name: str, value: object, pattern: re.Pattern[str], shape: str) -> None:
    if type(value) is not str or not pattern.fullmatch(value):
        raise _format_error(f"{name} must be {shape}, not {_show(value)}")


def _check_fields(m: Manifest) -> None:
    """Every field of a manifest, by the format's rules; raises BundleError("format")."""
    if type(m.component) is not str or m.component not in COMPONENTS:
        raise _format_error(f"component must be one of {', '.join(COMPONENTS)}, not {_show(m.component)}")
    if type(m.compatible) is not tuple or not 1 <= len(m.compatible) <= COMPATIBLE_MAX:
        raise _format_error(f"compatible must be a list of 1 to {COMPATIBLE_MAX} hardware ids, "
                            f"not {_show(m.compatible)}")
    for hardware_id in m.compatible:
        _check_text("each compatible hardware id", hardware_id, _HARDWARE_ID,
                    "1 to 64 characters of A-Z a-z 0-9 . _ -")
    _check_text("version", m.version, _VERSION, "1 to 32 characters of 0-9 A-Z a-z . + _ -")
    _check_int("security_version", m.security_version, SECURITY_VERSION_MAX)
    _check_int("size", m.size, SIZE_MAX)
    _check_text("sha256", m.sha256, _SHA256, "64 lowercase hex digits")
    _check_text("key_id", m.key_id, _KEY_ID, "16 lowercase hex digits")


@dataclass(frozen=True)
class Manifest:
    """The signed header of a bundle: what the payload is, for which hardware, and its digest.

    Built only with valid fields (``__post_init__`` checks them), so holding a Manifest
    means holding a well-formed one; whether it is *trusted* is the Verifier's business.
    """

    component: str
    compatible: tuple[str, ...]
    version: str
    security_version: int
    size: int
    sha256: str
    key_id: str

    def __post_init__(self) -> None:
        _check_fields(self)

    def to_dict(self) -> dict:
        """The header's JSON object (``compatible`` as a list), in the format's key order."""
        return {"component": self.component, "compatible": list(self.compatible),
                "version": self.version, "security_version": self.security_version,
                "size": self.size, "sha256": self.sha256, "key_id": self.key_id}


# --- keys ---------------------------------------------------------------------------------

def generate_key() -> tuple[bytes, bytes]:
    """A new signing key: (private PEM, PKCS8 unencrypted; public PEM, SubjectPublicKeyInfo)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def _pem_bytes(pem: bytes | str) -> bytes:
    if isinstance(pem, str):
        return pem.encode("utf-8", "replace")
    if isinstance(pem, (bytes, bytearray, memoryview)):
        return bytes(pem)
    raise _format_error(f"a key must be PEM text, not {type(pem).__name__}")


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; anything else (RSA, a private key, garbage) is a format error,
    so a wrong file given as a trusted key is refused loudly rather than trusting nothing silently."""
    try:
        key = serialization.load_pem_public_key(_pem_bytes(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise _format_error(f"not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _format_error(f"the public key is {type(key).__name__.lstrip('_')}, not Ed25519")
    return key


def _load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key from PEM, or BundleError("format")."""
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise _format_error(f"not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _format_error(f"the signing key is {type(key).__name__.lstrip('_')}, not Ed25519")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw 32-byte key: names the key in a header."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- parsing --------------------------------------------------------------------------------

def _check_prefix(buf: bytes | bytearray) -> int | None:
    """Check as much of the 16-byte prefix as has arrived, so garbage is refused at its first
    byte; return header_len once the prefix is whole, None before."""
    got = bytes(buf[:len(MAGIC)])
    if got != MAGIC[:len(got)]:
        raise _format_error(f"not a bundle: it does not start with {MAGIC.decode()}")
    if len(buf) > 8 and buf[8] != FORMAT_VERSION:
        raise _format_error(f"bundle format {buf[8]} is not supported (this reads format {FORMAT_VERSION})")
    if any(buf[9:12]):
        raise _format_error("bytes 9 to 11 of the prefix must be zero")
    if len(buf) < PREFIX_SIZE:
        return None
    header_len = _PREFIX.unpack_from(buf)[3]
    if not 1 <= header_len <= HEADER_MAX:
        raise _format_error(f"header_len {header_len} is outside 1..{HEADER_MAX}")
    return header_len


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """json object_pairs_hook: a key given twice could mean one thing to us and another to a
    different parser; refuse it instead of keeping the last."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise _format_error(f"the header gives {_show(key)} twice")
        seen[key] = value
    return seen


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse_header(raw: bytes) -> Manifest:
    """The header's bytes as a Manifest: strict UTF-8 JSON, exactly HEADER_KEYS, strict types."""
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _format_error(f"the header is not UTF-8 JSON ({e})") from None
    if type(obj) is not dict:
        raise _format_error(f"the header is a JSON {type(obj).__name__}, not an object")
    missing = [k for k in HEADER_KEYS if k not in obj]
    unknown = sorted(set(obj) - set(HEADER_KEYS))
    if missing or unknown:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + \
                ([f"has unknown {', '.join(_show(k) for k in unknown)}"] if unknown else [])
        raise _format_error(f"the header {' and '.join(parts)}")
    if type(obj["compatible"]) is not list:
        raise _format_error(f"compatible must be a list of hardware ids, not {_show(obj['compatible'])}")
    return Manifest(**{**obj, "compatible": tuple(obj["compatible"])})


def _encode_head(manifest: Manifest) -> bytes:
    """Prefix and header of a manifest: the bytes a signature covers."""
    header = json.dumps(manifest.to_dict(), separators=(",", ":")).encode("ascii")
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, b"\0\0\0", len(header)) + header


def _read_head(f: BinaryIO) -> tuple[Manifest, bytes]:
    """Read and parse prefix, header and signature from a file (no trust); leaves f at the payload."""
    prefix = f.read(PREFIX_SIZE)
    header_len = _check_prefix(prefix)
    if header_len is None:
        raise BundleError("truncated", f"the bundle ends in its prefix ({len(prefix)} of {PREFIX_SIZE} bytes)")
    header = f.read(header_len)
    if len(header) < header_len:
        raise BundleError("truncated", f"the bundle ends in its header ({len(header)} of {header_len} bytes)")
    manifest = _parse_header(header)
    signature = f.read(SIGNATURE_SIZE)
    if len(signature) < SIGNATURE_SIZE:
        raise BundleError("truncated",
                          f"the bundle ends in its signature ({len(signature)} of {SIGNATURE_SIZE} bytes)")
    return manifest, signature


def read_header(path: str) -> tuple[Manifest, bool]:
    """Parse a bundle's header without trusting it: (manifest, signed). For diagnostics and the
    output of ``bundle verify``; never a reason to install anything."""
    with open(path, "rb") as f:
        manifest, signature = _read_head(f)
    return manifest, signature != _UNSIGNED_SIGNATURE and manifest.key_id != UNSIGNED_KEY_ID


# --- streaming verification -----------------------------------------------------------------

class Verifier:
    """Streaming check: feed() chunks of any size; raises BundleError as early as possible.

    The header is parsed and its signature verified against ``trusted[key_id]`` before any
    payload byte is hashed or given to ``sink``; a declared size above ``max_size`` is refused
    as soon as the header is read, and a byte beyond the declared size when it arrives. The
    digest can only be known at the end: ``finish()`` raises if it is wrong, so a consumer
    that has written payload to a slot must treat that slot as garbage on any exception.

    ``sink`` gets each run of payload bytes: the very object fed when it is all payload,
    else a memoryview slice of it (no copy); valid during the call only. After an error
    every later feed() or finish() raises the same error.
    """

    def __init__(self, trusted: dict[str, Ed25519PublicKey], max_size: int, sink: Sink | None = None):
        for kid, key in trusted.items():
            if not isinstance(key, Ed25519PublicKey) or key_id(key) != kid:
                raise ValueError(f"trusted[{kid!r}] is not the Ed25519 public key with that key id")
        if type(max_size) is not int or max_size < 0:
            raise ValueError(f"max_size must be an integer >= 0, not {max_size!r}")
        self._trusted = dict(trusted)
        self._max_size = max_size
        self._sink = sink
        self._head = bytearray()
        self._head_size = PREFIX_SIZE   # bytes of head needed to finish the current part
        self._part = "prefix"           # prefix, header, signature, payload
        self._claimed: Manifest | None = None
        self._hash = hashlib.sha256()
        self._error: BundleError | None = None
        self.manifest: Manifest | None = None
        self.payload_bytes = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._raise_if_failed()
        try:
            if self.manifest is not None:
                self._take_payload(memoryview(data).cast("B"), data)
                return
            rest = self._fill_head(memoryview(data).cast("B"))
            if len(rest):
                self._take_payload(rest, rest)
        except BundleError as e:
            self._error = e
            raise

    def finish(self) -> Manifest:
        self._raise_if_failed()
        try:
            return self._finish()
        except BundleError as e:
            self._error = e
            raise

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _head_missing(self) -> int:
        """Head bytes still needed to finish the current part (0 once in the payload): lets a
        reader of a file read the head in exact pieces so its payload reads are pure payload."""
        return 0 if self.manifest is not None else self._head_size - len(self._head)

    def _fill_head(self, view: memoryview) -> memoryview:
        """Take head bytes part by part, acting at each boundary; return what is left (payload)."""
        while len(view) and self.manifest is None:
            take = min(len(view), self._head_size - len(self._head))
            self._head += view[:take]
            view = view[take:]
            self._advance()
        return view

    def _advance(self) -> None:
        """Check the prefix as it arrives, the header when it is whole, the signature when whole."""
        if self._part == "prefix":
            header_len = _check_prefix(self._head)
            if header_len is not None:
                self._part, self._head_size = "header", PREFIX_SIZE + header_len
        elif len(self._head) < self._head_size:
            return
        elif self._part == "header":
            self._claimed = self._admit(_parse_header(bytes(self._head[PREFIX_SIZE:])))
            self._part, self._head_size = "signature", self._head_size + SIGNATURE_SIZE
        else:
            self.manifest = self._verify_signature()
            self._part, self._head = "payload", bytearray()

    def _admit(self, claimed: Manifest) -> Manifest:
        """Refuse what the header alone shows to be unacceptable, before reading any further."""
        if claimed.key_id == UNSIGNED_KEY_ID:
            raise BundleError("unsigned", "the bundle is not signed (key id 0000000000000000); "
                                          "sign it with `redfish-racklet bundle sign`")
        if claimed.key_id not in self._trusted:
            raise BundleError("untrusted", f"the bundle is signed by key {claimed.key_id}, "
                                           "which is not among the trusted signing keys")
        if claimed.size > self._max_size:
            raise BundleError("oversize", f"the payload is {claimed.size} bytes; at most "
                                          f"{self._max_size} are accepted")
        return claimed

    def _verify_signature(self) -> Manifest:
        assert self._claimed is not None
        signature = bytes(self._head[-SIGNATURE_SIZE:])
        if signature == _UNSIGNED_SIGNATURE:
            raise BundleError("unsigned", f"the bundle names key {self._claimed.key_id} but its "
                                          "signature is empty")
        try:
            self._trusted[self._claimed.key_id].verify(signature, bytes(self._head[:-SIGNATURE_SIZE]))
        except InvalidSignature:
            raise BundleError("signature", f"the signature does not match the header for key "
                                           f"{self._claimed.key_id} (the header or signature was "
                                           "altered)") from None
        return self._claimed

    def _take_payload(self, view: memoryview, whole: bytes | bytearray | memoryview) -> None:
        """Hash and hand on payload bytes, refusing the first chunk that goes beyond the size."""
        assert self.manifest is not None
        size = self.manifest.size
        if self.payload_bytes + len(view) > size:
            raise BundleError("oversize", f"more than the {size} payload bytes the header declares "
                                          "(trailing data)")
        self._hash.update(view)
        self.payload_bytes += len(view)
        if self._sink is not None:
            self._sink(whole)

    def _finish(self) -> Manifest:
        if self.manifest is None:
            raise BundleError("truncated", f"the bundle ends in its {self._part} "
                                           f"({len(self._head)} of {self._head_size} head bytes)")
        if self.payload_bytes < self.manifest.size:
            raise BundleError("truncated", f"the bundle ends after {self.payload_bytes} of its "
                                           f"{self.manifest.size} payload bytes")
        digest = self._hash.hexdigest()
        if digest != self.manifest.sha256:
            raise BundleError("digest", f"the payload's sha256 is {digest}; the signed header says "
                                        f"{self.manifest.sha256}")
        return self.manifest


def _verified_chunks(f: BinaryIO, verifier: Verifier, chunk: int) -> Iterator[bytes]:
    """Feed a file through a verifier; yield each payload chunk once it has passed, and run
    finish() before the last return so a digest error reaches the consumer as an exception."""
    while (missing := verifier._head_missing()) and (data := f.read(missing)):
        verifier.feed(data)
    while data := f.read(chunk):
        verifier.feed(data)   # a pure-payload read: after the head, reads are aligned
        yield data
    verifier.finish()


def verified_payload(path: str, trusted: dict[str, Ed25519PublicKey], max_size: int,
                     chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield a bundle file's payload chunks as they pass the Verifier; raise BundleError (e.g.
    ``digest``) at the end, before returning normally. The agent copies into a slot with this,
    and keeps the slot only if the loop ends without an exception."""
    if type(chunk) is not int or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
    verifier = Verifier(trusted, max_size)
    with open(path, "rb") as f:
        yield from _verified_chunks(f, verifier, chunk)


def verify_file(path: str, trusted: dict[str, Ed25519PublicKey], max_size: int) -> Manifest:
    """Check a whole bundle file: its verified manifest, or BundleError."""
    verifier = Verifier(trusted, max_size)
    with open(path, "rb") as f:
        for _ in _verified_chunks(f, verifier, CHUNK):
            pass
    return verifier.finish()


# --- writing bundles ------------------------------------------------------------------------

@contextmanager
def _replacing(path: str, mode: int | None = None) -> Iterator[BinaryIO]:
    """Write the new version of ``path`` beside it and move it into place only when whole: a
    reader never sees half a bundle, and a failure leaves the old file as it was."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _copy_exactly(src: BinaryIO, dst: BinaryIO, size: int, hasher: hashlib._Hash, name: str) -> None:
    """Copy exactly ``size`` bytes in CHUNK pieces while hashing, and refuse a source that is
    shorter or longer than that."""
    left = size
    while left:
        data = src.read(min(CHUNK, left))
        if not data:
            raise BundleError("truncated", f"{name} ends after {size - left} of {size} payload bytes")
        hasher.update(data)
        dst.write(data)
        left -= len(data)
    if src.read(1):
        raise BundleError("oversize", f"{name} has data after its {size} payload bytes")


def create(payload_path: str, out_path: str, *, component: str, compatible: list[str], version: str,
           security_version: int) -> Manifest:
    """Write an unsigned bundle of a payload file (streamed once, in CHUNK pieces).

    The payload's size comes from the file and its digest is filled in after the copy; the
    header has the same length either way (64 hex digits), so one pass suffices. The payload
    must be a regular file, whose size is known before it is read."""
    if not isinstance(compatible, (list, tuple)):
        raise _format_error(f"compatible must be a list of hardware ids, not {_show(compatible)}")
    with open(payload_path, "rb") as src:
        st = os.fstat(src.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _format_error(f"{payload_path} is not a regular file")
        draft = Manifest(component=component, compatible=tuple(compatible), version=version,
                         security_version=security_version, size=st.st_size, sha256="0" * 64,
                         key_id=UNSIGNED_KEY_ID)
        hasher = hashlib.sha256()
        with _replacing(out_path) as dst:
            dst.write(_encode_head(draft) + _UNSIGNED_SIGNATURE)
            _copy_exactly(src, dst, draft.size, hasher, payload_path)
            manifest = dataclasses.replace(draft, sha256=hasher.hexdigest())
            dst.seek(0)
            dst.write(_encode_head(manifest))
    return manifest


def sign(bundle_path: str, private_pem: bytes) -> Manifest:
    """Sign a bundle (unsigned, or signed before by any key) in place, atomically.

    The payload is re-hashed while it is copied and a bundle whose payload does not match its
    header (``digest``, ``truncated``, ``oversize``) is refused: a signature vouches for the
    payload, so we never sign one we have not checked. The file keeps its mode."""
    private = _load_private_key(private_pem)
    with open(bundle_path, "rb") as src:
        old, _signature = _read_head(src)
        manifest = dataclasses.replace(old, key_id=key_id(private.public_key()))
        head = _encode_head(manifest)
        hasher = hashlib.sha256()
        with _replacing(bundle_path, stat.S_IMODE(os.fstat(src.fileno()).st_mode)) as dst:
            dst.write(head + private.sign(head))
            _copy_exactly(src, dst, manifest.size, hasher, bundle_path)
            if hasher.hexdigest() != manifest.sha256:
                raise BundleError("digest", f"the payload's sha256 is {hasher.hexdigest()}; its header "
                                            f"says {manifest.sha256}: refusing to sign it")
    return manifest
