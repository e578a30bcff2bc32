"""CertificateService and the certificates the service holds.

- ``/redfish/v1/CertificateService``: ``CertificateLocations`` and the actions
  ``GenerateCSR`` (a new key for the HTTPS certificate, made and kept on the service;
  the CSR is returned) and ``ReplaceCertificate`` (the signed certificate for that key).
- ``Managers/RMC/NetworkProtocol/HTTPS/Certificates/1``: the HTTPS certificate.
- ``AccountService/MultiFactorAuth/ClientCertificate/Certificates/1``: the client CA,
  the only trust anchor of client certificates (see mtls.py).

A replaced certificate takes effect on the next TLS connection, with no worker
restart (``server.TLSContexts``): the files are swapped atomically, key first.
What ``ReplaceCertificate`` accepts: a PEM certificate (or PEMchain) whose public key
is the key of the last ``GenerateCSR`` (or the current HTTPS key, to renew with the
same key), currently valid, not a CA, allowing serverAuth if it says what it allows.
Its issuer is not judged: who signs the rack's HTTPS certificate (the rack CA, a
site CA, a public one) is the clients' business, and the service cannot know whom
they trust. Anything else is refused with 400 and nothing is replaced.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re

from flask import current_app
from flask_smorest import Blueprint

from .. import mtls, pki
from ..agent.events import Log
from ..messages import RedfishError, message
from ..privileges import declare
from ..web import RedfishView, collection, json_body, json_response
from .common import not_found, odata_type, state_dir, store
from .managers import RMC_ID

blp = Blueprint("certificate_service", __name__, description="Certificates")

BASE = "/redfish/v1/CertificateService"
GENERATE_CSR = "CertificateService.GenerateCSR"
REPLACE = "CertificateService.ReplaceCertificate"
HTTPS_CERTS = f"/redfish/v1/Managers/{RMC_ID}/NetworkProtocol/HTTPS/Certificates"
HTTPS_CERT = f"{HTTPS_CERTS}/1"
CLIENT_CA_CERTS = "/redfish/v1/AccountService/MultiFactorAuth/ClientCertificate/Certificates"
CLIENT_CA = f"{CLIENT_CA_CERTS}/1"
CERTIFICATE_TYPES = ("PEM", "PEMchain")
MAX_CERTIFICATE_STRING = 64 * 1024
MAX_NAME = 64


def _path(name: str) -> str:
    return os.path.join(state_dir(), name)


def certificate_doc(uri: str, name: str, file_name: str, usage: list[str] | None) -> dict:
    try:
        cert = pki.load_certs(_path(file_name))[0]
    except (OSError, ValueError, IndexError):
        raise RedfishError.of(503, "ServiceTemporarilyUnavailable", 1, headers={"Retry-After": "1"}) from None
    doc = {
        "@odata.id": uri,
        "@odata.type": odata_type("Certificate"),
        "Id": "1",
        "Name": name,
        **pki.certificate_facts(cert),
    }
    if usage:
        doc["CertificateUsageTypes"] = usage
    return doc


@blp.route(BASE)
class CertificateService(RedfishView):
    entity = "CertificateService"
    entity = "CertificateService"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return {
            "@odata.id": BASE,
            "@odata.type": odata_type("CertificateService"),
            "Id": "CertificateService",
            "Name": "Certificate Service",
            "Description": "Replaces the HTTPS certificate of the rack management controller.",
            "CertificateLocations": {"@odata.id": f"{BASE}/CertificateLocations"},
            "Actions": {
                f"#{GENERATE_CSR}": {"target": f"{BASE}/Actions/{GENERATE_CSR}"},
                f"#{REPLACE}": {"target": f"{BASE}/Actions/{REPLACE}",
                                "CertificateType@Redfish.AllowableValues": list(CERTIFICATE_TYPES)},
            },
        }


@blp.route(f"{BASE}/CertificateLocations")
class CertificateLocations(RedfishView):
    entity = "CertificateLocations"
    entity = "CertificateLocations"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        certs = [HTTPS_CERT, CLIENT_CA]
        return {
            "@odata.id": f"{BASE}/CertificateLocations",
            "@odata.type": odata_type("CertificateLocations"),
            "Id": "CertificateLocations",
            "Name": "Certificate Locations",
            "Links": {"Certificates": [{"@odata.id": c} for c in certs],
                      "Certificates@odata.count": len(certs)},
        }


def multi_factor_auth() -> dict:
    """AccountService ``MultiFactorAuth`` (PATCHed through ``mtls.split_patch``)."""
    return mtls.multi_factor_auth(store(), not current_app.config.get("REQUIRE_CLIENT_CERT", False))


def _rmc_only(manager_id: str) -> None:
    """Only the RMC serves HTTPS: a unit BMC has no network of its own (manager_network)."""
    if manager_id != RMC_ID:
        raise not_found("CertificateCollection", f"{manager_id}/NetworkProtocol/HTTPS/Certificates")


@blp.route("/redfish/v1/Managers/<manager_id>/NetworkProtocol/HTTPS/Certificates")
class HttpsCertificates(RedfishView):
    entity = "CertificateCollection"
    entity = "CertificateCollection"
    privileges = declare(entity, "GET", under=("ManagerCollection", "Manager", "ManagerNetworkProtocol"))
    cacheable = True

    def get(self, manager_id):
        _rmc_only(manager_id)
        return collection("CertificateCollection", "HTTPS Certificates", HTTPS_CERTS, [HTTPS_CERT])


@blp.route("/redfish/v1/Managers/<manager_id>/NetworkProtocol/HTTPS/Certificates/<cert_id>")
class HttpsCertificate(RedfishView):
    entity = "Certificate"
    entity = "Certificate"  # reads the file at every request: not cacheable
    privileges = declare(entity, "GET", under=("ManagerCollection", "Manager", "ManagerNetworkProtocol",
                                               "CertificateCollection"))

    def get(self, manager_id, cert_id):
        _rmc_only(manager_id)
        if cert_id != "1":
            raise not_found("Certificate", cert_id)
        return certificate_doc(HTTPS_CERT, "HTTPS Certificate", pki.SERVER_CERT, ["Web"])


@blp.route(CLIENT_CA_CERTS)
class ClientCaCertificates(RedfishView):
    entity = "CertificateCollection"
    entity = "CertificateCollection"
    privileges = declare(entity, "GET", under=("AccountService",))
    cacheable = True

    def get(self):
        return collection("CertificateCollection", "Trusted Client CA Certificates", CLIENT_CA_CERTS, [CLIENT_CA])


@blp.route(f"{CLIENT_CA_CERTS}/<cert_id>")
class ClientCaCertificate(RedfishView):
    entity = "Certificate"
    entity = "Certificate"
    privileges = declare(entity, "GET", under=("AccountService", "CertificateCollection"))

    def get(self, cert_id):
        if cert_id != "1":
            raise not_found("Certificate", cert_id)
        return certificate_doc(CLIENT_CA, "Client CA Certificate", pki.CLIENT_CA_CERT, None)


# -- actions -------------------------------------------------------------------------------

def _refuse(msg_id: str, *args, resolution: str | None = None) -> RedfishError:
    err = message(msg_id, *args)
    if resolution:
        err["Resolution"] = resolution
    return RedfishError(400, [err])


def _string(body: dict, action: str, name: str, limit: int = MAX_NAME, required: bool = False) -> str | None:
    if name not in body:
        if required:
            raise _refuse("ActionParameterMissing", action, name)
        return None
    value = body[name]
    if not isinstance(value, str):
        raise _refuse("ActionParameterValueTypeError", value, name, action)
    if not value or len(value) > limit or any(not c.isprintable() and c not in "\r\n" for c in value):
        raise _refuse("ActionParameterValueError", name, action,
                      resolution=f"Give {name} as 1 to {limit} printable characters.")
    return value


def _link(body: dict, action: str, name: str, allowed: str) -> None:
    """A required ``{"@odata.id": …}`` parameter that must name ``allowed``."""
    if name not in body:
        raise _refuse("ActionParameterMissing", action, name)
    value = body[name]
    if not isinstance(value, dict) or not isinstance(value.get("@odata.id"), str):
        raise _refuse("ActionParameterValueTypeError", value, name, action)
    if value["@odata.id"].rstrip("/") != allowed:
        raise _refuse("ActionParameterValueError", name, action,
                      resolution=f"This service replaces only the HTTPS certificate: give {allowed}.")


def _unknown(body: dict, action: str, known: tuple[str, ...], unsupported: tuple[str, ...]) -> None:
    for key in body:
        if key.startswith("@"):
            continue
        if key in unsupported:
            raise _refuse("ActionParameterNotSupported", key, action)
        if key not in known:
            raise _refuse("ActionParameterUnknown", action, key)


# GenerateCSR parameter -> x509 NameOID attribute of the subject
_SUBJECT = (("CommonName", "COMMON_NAME"), ("Organization", "ORGANIZATION_NAME"),
            ("OrganizationalUnit", "ORGANIZATIONAL_UNIT_NAME"), ("City", "LOCALITY_NAME"),
            ("State", "STATE_OR_PROVINCE_NAME"), ("Country", "COUNTRY_NAME"), ("Email", "EMAIL_ADDRESS"))
_CSR_KNOWN = ("CertificateCollection", "AlternativeNames", "KeyPairAlgorithm", "KeyCurveId",
              "KeyBitLength") + tuple(p for p, _ in _SUBJECT)
_CSR_UNSUPPORTED = ("ChallengePassword", "ContactPerson", "GivenName", "Initials", "Surname",
                    "UnstructuredName", "KeyUsage")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _alt_names(body: dict) -> list[str]:
    names = body.get("AlternativeNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _refuse("ActionParameterValueTypeError", names, "AlternativeNames", GENERATE_CSR)
    for n in names:
        try:
            ipaddress.ip_address(n)
        except ValueError:
            if not _DNS_NAME.match(n):
                raise _refuse("ActionParameterValueFormatError", n, "AlternativeNames", GENERATE_CSR) from None
    if len(names) > 32:
        raise _refuse("ActionParameterValueError", "AlternativeNames", GENERATE_CSR,
                      resolution="Give at most 32 alternative names.")
    return names


def _key_choice(body: dict) -> tuple[str, str, int]:
    algorithm = body.get("KeyPairAlgorithm", "TPM_ALG_ECDSA")
    if not isinstance(algorithm, str):
        raise _refuse("ActionParameterValueTypeError", algorithm, "KeyPairAlgorithm", GENERATE_CSR)
    if algorithm not in pki.KEY_PAIR_ALGORITHMS:
        raise _refuse("ActionParameterValueNotInList", algorithm, "KeyPairAlgorithm", GENERATE_CSR)
    curve = body.get("KeyCurveId", "TPM_ECC_NIST_P256")
    if not isinstance(curve, str):
        raise _refuse("ActionParameterValueTypeError", curve, "KeyCurveId", GENERATE_CSR)
    if curve not in pki.KEY_CURVES:
        raise _refuse("ActionParameterValueNotInList", curve, "KeyCurveId", GENERATE_CSR)
    default_bits = 2048 if algorithm == "TPM_ALG_RSA" else {"TPM_ECC_NIST_P256": 256, "TPM_ECC_NIST_P384": 384}[curve]
    bits = body.get("KeyBitLength", default_bits)
    if not isinstance(bits, int) or isinstance(bits, bool):
        raise _refuse("ActionParameterValueTypeError", bits, "KeyBitLength", GENERATE_CSR)
    allowed = pki.RSA_BITS if algorithm == "TPM_ALG_RSA" else (default_bits,)
    if bits not in allowed:
        raise _refuse("ActionParameterValueNotInList", bits, "KeyBitLength", GENERATE_CSR)
    return algorithm, curve, bits


@blp.route(f"{BASE}/Actions/{GENERATE_CSR}")
class GenerateCSR(RedfishView):
    entity = "CertificateService"
    entity = "CertificateService"  # an action: the service's POST
    privileges = declare(entity, "POST")

    def post(self):
        body = json_body()
        _unknown(body, GENERATE_CSR, _CSR_KNOWN, _CSR_UNSUPPORTED)
        _link(body, GENERATE_CSR, "CertificateCollection", HTTPS_CERTS)
        subject = {}
        for param, oid in _SUBJECT:
            value = _string(body, GENERATE_CSR, param, required=param == "CommonName")
            if value is not None:
                subject[oid] = value
        if "COUNTRY_NAME" in subject and not re.fullmatch(r"[A-Z]{2}", subject["COUNTRY_NAME"]):
            raise _refuse("ActionParameterValueFormatError", subject["COUNTRY_NAME"], "Country", GENERATE_CSR)
        alt_names = _alt_names(body)
        algorithm, curve, bits = _key_choice(body)
        csr = pki.generate_csr(state_dir(), subject, alt_names, algorithm, curve, bits)
        return json_response({"CSRString": csr, "CertificateCollection": {"@odata.id": HTTPS_CERTS}})


@blp.route(f"{BASE}/Actions/{REPLACE}")
class ReplaceCertificate(RedfishView):
    entity = "CertificateService"
    entity = "CertificateService"  # an action: the service's POST
    privileges = declare(entity, "POST")

    def post(self):
        body = json_body()
        _unknown(body, REPLACE, ("CertificateString", "CertificateType", "CertificateUri"), ("Password",))
        text = _string(body, REPLACE, "CertificateString", MAX_CERTIFICATE_STRING, required=True)
        ctype = body.get("CertificateType")
        if "CertificateType" not in body:
            raise _refuse("ActionParameterMissing", REPLACE, "CertificateType")
        if not isinstance(ctype, str):
            raise _refuse("ActionParameterValueTypeError", ctype, "CertificateType", REPLACE)
        if ctype not in CERTIFICATE_TYPES:
            raise _refuse("ActionParameterValueNotInList", ctype, "CertificateType", REPLACE)
        _link(body, REPLACE, "CertificateUri", HTTPS_CERT)
        try:
            certs = pki.parse_pem_certificates(text)
            if not certs:
                raise pki.CertificateProblem("no certificate in the PEM")
        except pki.CertificateProblem as e:
            raise _refuse("ActionParameterValueFormatError", _abbreviated(text), "CertificateString", REPLACE,
                          resolution=f"Give one PEM-encoded X.509 certificate: {e}.") from None
        if ctype == "PEM" and len(certs) != 1:
            raise _refuse("ActionParameterValueError", "CertificateString", REPLACE,
                          resolution="CertificateType PEM is one certificate; send a chain as PEMchain.")
        try:
            key_file = pki.check_server_cert(state_dir(), certs, dt.datetime.now(dt.timezone.utc))
        except pki.CertificateProblem as e:
            raise _refuse("ActionParameterValueError", "CertificateString", REPLACE,
                          resolution=f"Nothing was replaced: {e}.") from None
        pki.install_server_cert(state_dir(), certs, key_file)
        Log(store()).write("ResourceChanged", [], HTTPS_CERT)
        return json_response({"@Message.ExtendedInfo": [message("Success")]}, 200, {"Location": HTTPS_CERT})


def _abbreviated(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:40] + ("..." if len(first) > 40 or len(text) > len(first) else "")
