"""Property-based tests of the signed bundle's streaming Verifier (redfish_racklet/bundle.py).

- Any bytes, cut into any chunks: the Verifier raises BundleError (or accepts), never another
  exception; and after an error every later call raises the same error.
- A valid signed bundle verifies in ANY chunking, and the sink gets exactly the payload.
- Any single-byte change (any position, any new value) is refused.

Derandomized in the suite; RACKLET_PROP_EXAMPLES=5000 for a longer, random run.
"""

from __future__ import annotations

import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from redfish_racklet import bundle  # noqa: E402
from redfish_racklet.bundle import BundleError, Verifier  # noqa: E402

LONG = os.environ.get("RACKLET_PROP_EXAMPLES")
FIELDS = {"component": "boot", "compatible": ["racklet-sim"], "version": "1.2.0", "security_version": 3}


def bounded(examples: int):
    """The suite's settings: few examples, always the same; RACKLET_PROP_EXAMPLES for more, random."""
    return settings(max_examples=int(LONG or examples), derandomize=LONG is None, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                    print_blob=True)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """(trusted keys, the bytes of a signed bundle, its payload): made once, with the real code."""
    tmp = tmp_path_factory.mktemp("bundle")
    private_pem, public_pem = bundle.generate_key()
    public = bundle.load_public_key(public_pem)
    payload = bytes((i * 7 + 3) % 251 for i in range(3000))
    (tmp / "payload").write_bytes(payload)
    bundle.create(str(tmp / "payload"), str(tmp / "b.rb"), **FIELDS)
    bundle.sign(str(tmp / "b.rb"), private_pem)
    return {bundle.key_id(public): public}, (tmp / "b.rb").read_bytes(), payload


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at the given points (any order, repeats give empty chunks)."""
    marks = sorted(p % (len(data) + 1) for p in points)
    return [data[a:b] for a, b in zip([0, *marks], [*marks, len(data)])]


def run(trusted, chunks: list[bytes], max_size: int = 1 << 20):
    """Feed the chunks then finish: (manifest, payload received) or the BundleError."""
    received = bytearray()
    v = Verifier(trusted, max_size, sink=lambda b: received.extend(b))
    try:
        for chunk in chunks:
            v.feed(chunk)
        return v.finish(), bytes(received)
    except BundleError as e:
        for again in (lambda: v.feed(b"x"), v.finish):   # a failed verifier stays failed
            with pytest.raises(BundleError) as same:
                again()
            assert same.value is e
        assert e.reason and str(e)
        return e


@bounded(200)
@given(data=st.binary(max_size=600), points=st.lists(st.integers(0, 700), max_size=8))
def test_any_bytes_in_any_chunks_are_refused_cleanly(signed, data, points):
    result = run(signed[0], cuts(data, points))
    assert isinstance(result, BundleError)


@bounded(100)
@given(data=st.data(), points=st.lists(st.integers(0, 4000), max_size=8))
def test_a_prefix_of_a_real_bundle_or_garbage_after_its_header_is_refused(signed, data, points):
    trusted, raw, _ = signed
    cut = data.draw(st.integers(0, len(raw) - 1))
    tail = data.draw(st.binary(max_size=40))
    assert isinstance(run(trusted, cuts(raw[:cut] + tail, points)), BundleError)


@bounded(100)
@given(points=st.lists(st.integers(0, 4000), max_size=12))
def test_a_signed_bundle_verifies_in_any_chunking(signed, points):
    trusted, raw, payload = signed
    result = run(trusted, cuts(raw, points))
    assert not isinstance(result, BundleError), result
    manifest, received = result
    assert received == payload and manifest.size == len(payload)
    assert (manifest.component, list(manifest.compatible), manifest.version) == (
        FIELDS["component"], FIELDS["compatible"], FIELDS["version"])


@bounded(200)
@given(data=st.data(), points=st.lists(st.integers(0, 4000), max_size=4))
def test_any_single_byte_change_is_refused(signed, data, points):
    trusted, raw, _ = signed
    at = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    changed = raw[:at] + bytes([new]) + raw[at + 1:]
    assert isinstance(run(trusted, cuts(changed, points)), BundleError), at


def test_every_byte_flip_is_refused(signed):
    """Exhaustive for one flip (XOR 0x01) at each position: no position is left unguarded."""
    trusted, raw, _ = signed
    accepted = [at for at in range(len(raw))
                if not isinstance(run(trusted, [raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]]), BundleError)]
    assert accepted == []
