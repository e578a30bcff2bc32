"""UpdateService: signed bundles pushed (multipart) or pulled (SimpleUpdate, https only),
FirmwareInventory with one SoftwareInventory per component slot, activation by hand.

The API worker never writes a slot. A push streams through ``bundle.Verifier`` into the
staging area (the signature is checked before any payload byte is kept; a bad bundle
stops the upload at the byte that gives it away); then every target is checked
(component, hardware, security floor) and a Task is created; the agent re-verifies
the bundle while it copies it into the inactive slot (``agent/updater.py``).

- ``MultipartHttpPushUri`` (``/redfish/v1/UpdateService/update-multipart``): parts
  ``UpdateParameters`` (JSON: ``Targets``, ``@Redfish.OperationApplyTime``,
  ``ForceUpdate``) and ``UpdateFile`` (the bundle).
- ``SimpleUpdate``: ``ImageURI`` over HTTPS only; a scheme-less URI counts as HTTPS only
  with ``TransferProtocol: HTTPS`` (the schema's default would be plain HTTP: refused).
- ``Activate`` (UpdateService and SoftwareInventory): switch to a verified slot by hand.
- ``Oem.Racklet``: the trusted signing keys and automatic updates (Administrator only).
"""

from __future__ import annotations

import json
import os
import secrets
import time

from flask import request
from flask_smorest import Blueprint
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from .. import bundle, firmware
from .. import updates as updater
from ..agent import client, events
from ..messages import RedfishError, message
from ..privileges import declare
from ..web import RedfishView, collection, json_body, json_response
from .common import not_found, odata_type, principal, state_dir, store
from .task_service import accepted

blp = Blueprint("update_service", __name__, description="Firmware updates")

SERVICE = "/redfish/v1/UpdateService"
PUSH = f"{SERVICE}/update-multipart"
SIMPLE = "UpdateService.SimpleUpdate"
ACTIVATE = "UpdateService.Activate"
SW_ACTIVATE = "SoftwareInventory.Activate"
PARAMS_MAX = 64 * 1024            # the UpdateParameters part
PARSER_BUFFER = 1024 * 1024       # what the multipart parser may hold at once (its chunks are 64 KiB)
UPLOAD_MAX = firmware.MAX_IMAGE_BYTES + bundle.HEADER_MAX + 1024 * 1024  # bundle + multipart framing
UPDATE_PARAMETERS = ("Targets", "@Redfish.OperationApplyTime", "ForceUpdate")
SIMPLE_PARAMETERS = ("ImageURI", "TransferProtocol", "Targets", "@Redfish.OperationApplyTime", "ForceUpdate")
ADMIN = [["ConfigureManager"]]     # signing keys, the feed, certificate checks: the rack's security
URI_MAX = 2048
FEED_INTERVAL_RANGE = (updater.AUTO_MIN_INTERVAL, 7 * 86400)


# -- documents ----------------------------------------------------------------------------

def unit_ids() -> list[str]:
    return [u["id"] for u in store().units()]


def service_doc() -> dict:
    s = store()
    auto = updater.auto_settings(s)
    return {
        "@odata.id": SERVICE,
        "@odata.type": odata_type("UpdateService"),
        "Id": "UpdateService",
        "Name": "Update Service",
        "ServiceEnabled": True,
        "Status": {"State": "Enabled", "Health": "OK"},
        "MultipartHttpPushUri": PUSH,
        "MaxImageSizeBytes": firmware.MAX_IMAGE_BYTES + bundle.HEADER_MAX + 80,
        "VerifyRemoteServerCertificate": verify_remote(s),
        "FirmwareInventory": {"@odata.id": firmware.INVENTORY},
        "Actions": {
            f"#{SIMPLE}": {"target": f"{SERVICE}/Actions/{SIMPLE}",
                           "TransferProtocol@Redfish.AllowableValues": ["HTTPS"]},
            f"#{ACTIVATE}": {"target": f"{SERVICE}/Actions/{ACTIVATE}"},
        },
        "Oem": {"Racklet": {
            "@odata.type": "#Racklet.v1_0_0.UpdateService",
            "SigningKeys": [{"KeyId": k["id"], "PublicKey": k["pem"], "Comment": k["comment"]}
                            for k in s.signing_keys()],
            "AutomaticUpdates": {"Enabled": auto["enabled"], "FeedURI": auto["feed"],
                                 "IntervalSeconds": auto["interval"], "ApplyTime": auto["apply_time"]},
        }},
    }


def verify_remote(s) -> bool:
    return s.get_meta("update_verify_remote", "1") == "1"


def inventory_doc(target: str, component: str, slot: str) -> dict:
    s = store()
    fw = s.firmware(target, component)
    row = s.slot(target, component, slot)
    if fw is None or row is None:
        raise not_found("SoftwareInventory", firmware.inventory_id(target, component, slot))
    uri = firmware.inventory_uri(target, component, slot)
    device = firmware.device_uri(target, component)
    active, staged, trial = slot == fw["active"], slot == fw["staged"], slot == fw["trial"]
    state = ("Enabled" if active else "Starting" if trial else "Updating" if row["state"] == "writing"
             else "StandbySpare" if row["state"] == "valid" else "Absent")
    label = {"rmc": "RMC software", "bmc": "BMC firmware", "boot": "boot firmware"}[component]
    floor_slot = max((s.slot(target, component, x) for x in firmware.SLOTS),
                     key=lambda r: (r["security_version"] or 0) if r["security_version"] is not None
                     and (r["security_version"] or 0) <= fw["floor"] else -1)
    doc = {
        "@odata.id": uri,
        "@odata.type": odata_type("SoftwareInventory"),
        "Id": firmware.inventory_id(target, component, slot),
        "Name": f"{'' if target == firmware.RMC else target + ' '}{label}, slot {slot}",
        "SoftwareId": f"racklet-{component}",
        "Version": row["version"] or "",
        "Updateable": True,
        "WriteProtected": active or trial,   # the running slot is never written
        "Active": active,
        "Staged": staged,
        "ResetRequiredOnUpdate": component != "rmc",
        "Status": {"State": state, "Health": "OK"} if state != "Absent" else {"State": "Absent"},
        "RelatedItem": [{"@odata.id": device}],
        "RelatedItem@odata.count": 1,
        "Links": {"ActiveTargets": [{"@odata.id": device}] if active else [],
                  "StagedTargets": [{"@odata.id": device}] if staged else []},
        "Actions": {f"#{SW_ACTIVATE}": {"target": f"{uri}/Actions/{SW_ACTIVATE}"}},
        "Oem": {"Racklet": {
            "@odata.type": "#Racklet.v1_0_0.SoftwareInventory",
            "Slot": slot,
            "SecurityVersion": row["security_version"],
            "SecurityVersionFloor": fw["floor"],
            "Sha256": row["sha256"],
            "SigningKeyId": row["key_id"] or None,
            "OnTrial": trial,
        }},
    }
    if floor_slot and floor_slot["version"] and fw["floor"] > 0:
        doc["LowestSupportedVersion"] = floor_slot["version"]
    return doc


def active_image(target: str, component: str) -> dict | None:
    """What a device's document shows of its firmware: the active slot's inventory URI,
    both slots' URIs and the active version; None when it has no slots."""
    fw = store().firmware(target, component)
    if fw is None:
        return None
    row = store().slot(target, component, fw["active"]) or {}
    return {"active": firmware.inventory_uri(target, component, fw["active"]),
            "images": [firmware.inventory_uri(target, component, x) for x in firmware.SLOTS],
            "version": row.get("version")}


def image_links(target: str, component: str) -> dict:
    """``Links`` entries of a Manager or ComputerSystem: ActiveSoftwareImage, SoftwareImages."""
    img = active_image(target, component)
    if img is None:
        return {}
    return {"ActiveSoftwareImage": {"@odata.id": img["active"]},
            "SoftwareImages": [{"@odata.id": u} for u in img["images"]],
            "SoftwareImages@odata.count": len(img["images"])}


def switch_image(target: str, component: str, value) -> int:
    """PATCH of ``Links/ActiveSoftwareImage``: a task that activates that slot (409 if refused)."""
    uri = value.get("@odata.id") if isinstance(value, dict) else None
    prefix = firmware.INVENTORY + "/"
    parsed = firmware.parse_inventory_id(uri[len(prefix):]) if isinstance(uri, str) and uri.startswith(prefix) else None
    if parsed is None or parsed[:2] != (target, component):
        raise RedfishError(400, [message("PropertyValueIncorrect", "Links/ActiveSoftwareImage", str(uri))],
                           text=f"ActiveSoftwareImage must be one of {firmware.device_uri(target, component)}'s "
                                "own SoftwareImages")
    return activation(*parsed)


# -- input checks ---------------------------------------------------------------------------

def _trusted() -> dict:
    keys = updater.trusted_keys(store())
    if not keys:
        err = message("ActionNotSupported", "UpdateService firmware update")
        raise RedfishError(409, [err], text="no signing key is trusted yet: add one (UpdateService "
                           "Oem.Racklet.SigningKeys, or `redfish-racklet keys add`) before updating")
    return keys


def update_parameters(params: dict, action: str, names: tuple[str, ...]) -> dict:
    """Targets (resolved), apply time and ForceUpdate from an update's parameters."""
    errors = []
    for k in params:
        if k not in names and not (k.startswith("@") and k != "@Redfish.OperationApplyTime"):
            errors.append(message("ActionParameterUnknown", action, k))
    apply = params.get("@Redfish.OperationApplyTime", "Immediate")
    if not isinstance(apply, str):
        errors.append(message("ActionParameterValueTypeError", apply, "@Redfish.OperationApplyTime", action))
    elif apply not in firmware.APPLY_TIMES:
        errors.append(message("ActionParameterValueNotInList", apply, "@Redfish.OperationApplyTime", action))
    force = params.get("ForceUpdate", False)
    if not isinstance(force, bool):
        errors.append(message("ActionParameterValueTypeError", force, "ForceUpdate", action))
    raw = params.get("Targets", [])
    targets = []
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw) or len(raw) > 64:
        errors.append(message("ActionParameterValueTypeError", raw, "Targets", action))
    else:
        units = unit_ids()
        for t in raw:
            found = firmware.resolve_target(t, units)
            if found is None:
                errors.append(message("ActionParameterValueError", t, "Targets", action))
            elif found not in targets:
                targets.append(found)
    if errors:
        raise RedfishError(400, errors)
    return {"targets": [list(t) for t in targets], "apply_time": apply, "force": force}


def check_targets(manifest: dict, params: dict) -> list[list[str]]:
    """Every target the bundle will go to, each checked now (the agent checks again):
    a refusal names the target and the reason, with the Update registry's message."""
    s = store()
    targets = params["targets"] or [
        [t, c] for t, c in firmware.components_of(unit_ids())
        if c == manifest["component"] and _hardware(t) in manifest["compatible"]]
    image = firmware.image_name(manifest)
    if not targets:
        raise RedfishError(400, [events.message("NoTargetsDetermined", image)],
                           text=f"no device of this rack takes the bundle ({manifest['component']} firmware "
                                f"for {', '.join(manifest['compatible'])})")
    for target, component in targets:
        fw = s.firmware(target, component)
        uri = firmware.device_uri(target, component)
        if fw is None:
            raise RedfishError(400, [events.message("UpdateNotApplicable", image, uri)],
                               text=f"{uri} has no firmware slots")
        if fw["trial"]:
            raise RedfishError(409, [events.message("UpdateInProgress")],
                               text=f"{uri} is trying slot {fw['trial']}; wait for the trial to end")
        active = s.slot(target, component, fw["active"])
        try:
            firmware.check(manifest, target, component, _hardware(target), active, fw["floor"], params["force"])
        except firmware.Refused as e:
            args = [uri, image] if e.key.startswith("UpdateSkipped") else [image, uri]
            raise RedfishError(400, [events.message(e.key, *args)], text=e.reason) from None
    return targets


def _hardware(target: str) -> str:
    """The target's hardware id, as the agent published it from the manifest."""
    return store().rack_info().get("hardware_ids", {}).get(target, "")


def start_task(params: dict) -> int:
    """A task for the agent, and the agent told; 503 (and the task failed) without it."""
    s = store()
    tid = updater.new_task(s, principal().username, params, time.time())
    try:
        result = client.run_command(s, state_dir(), firmware.RMC, f"update:{tid}")
    except client.AgentUnavailable:
        result = {"state": "rejected", "message": "the rack agent did not answer"}
    if result["state"] != "done":
        updater.record(s, tid, [message("ServiceTemporarilyUnavailable", 5), events.message("TaskAborted", str(tid))],
                       state="Exception", status="Critical", ended=time.time(), params={"reason": result["message"]})
        if params.get("bundle"):
            _unlink(params["bundle"])
        raise RedfishError.of(503, "ServiceTemporarilyUnavailable", 5, headers={"Retry-After": "5"})
    return tid


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the multipart push ------------------------------------------------------------------------

class Upload:
    """The ``stream_factory`` of the multipart parser: the bundle part streams through the
    Verifier into a staging file (nothing else is kept but a small JSON part)."""

    def __init__(self, staging: str, trusted: dict):
        self.path = os.path.join(staging, f"upload-{secrets.token_hex(8)}.partial")
        self.trusted = trusted
        self.file = None
        self.verifier: bundle.Verifier | None = None
        self.json_parts: list = []

    def factory(self, total_content_length, content_type, filename, content_length=None):
        if content_type and content_type.split(";")[0].strip().lower() == "application/json":
            part = _Small(PARAMS_MAX)
            self.json_parts.append(part)
            return part
        if self.file is not None:
            raise RedfishError(400, [message("UnrecognizedRequestBody")], text="more than one UpdateFile part")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file = os.fdopen(fd, "wb", buffering=0)
        self.verifier = bundle.Verifier(self.trusted, firmware.MAX_IMAGE_BYTES, None)
        return _Sink(self.verifier, self.file)

    def finish(self) -> dict:
        if self.verifier is None:
            raise RedfishError(400, [message("ActionParameterMissing", "multipart update", "UpdateFile")])
        manifest = self.verifier.finish()
        os.fsync(self.file.fileno())
        self.file.close()
        return manifest.to_dict()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        _unlink(self.path)


class _Sink:
    """Writes what the Verifier accepts: a payload byte is written only after the header
    and signature verified (the Verifier raises first otherwise)."""

    def __init__(self, verifier: bundle.Verifier, f):
        self.verifier, self.f = verifier, f

    def write(self, data: bytes) -> int:
        self.verifier.feed(data)
        return self.f.write(data)

    def seek(self, *a):   # the parser rewinds a finished part; nothing to do for a stream
        return 0

    def read(self, *a):
        return b""


class _Small:
    def __init__(self, limit: int):
        self.limit, self.chunks, self.size = limit, [], 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise RequestEntityTooLarge()
        self.chunks.append(bytes(data))
        return len(data)

    def seek(self, *a):
        return 0

    def read(self, *a):
        return b"".join(self.chunks)


def _parse_params(form, upload: Upload) -> dict:
    raw = form.get("UpdateParameters")
    if raw is not None and len(raw) > PARAMS_MAX:
        raise RedfishError(413, [message("PayloadTooLarge")], text="UpdateParameters is larger than 64 KiB")
    if raw is None and upload.json_parts:
        raw = upload.json_parts[0].read().decode("utf-8", "replace")
    if raw is None:
        return {}
    try:
        params = json.loads(raw)
    except ValueError:
        raise RedfishError(400, [message("MalformedJSON")], text="UpdateParameters is not JSON") from None
    if not isinstance(params, dict):
        raise RedfishError(400, [message("ActionParameterValueTypeError", "UpdateParameters",
                                         "UpdateParameters", "multipart update")])
    return params


def _bundle_refused(e: bundle.BundleError) -> RedfishError:
    return RedfishError(400, [events.message("VerificationFailed", "UpdateFile", firmware.RMC)],
                        text=f"bundle refused ({e.reason}): {e.message}")


DRAIN_MAX = 8 * 1024 * 1024


def _drain() -> None:
    """Read and drop what a refused upload still sends (up to DRAIN_MAX): a client that is
    still sending when the server closes gets a reset instead of the answer. Beyond that
    the connection is closed without reading more (an endless upload ends there)."""
    stream = request.environ.get("wsgi.input")
    left = DRAIN_MAX
    while stream is not None and left > 0:
        try:
            chunk = stream.read(min(65536, left))
        except OSError:
            return
        if not chunk:
            return
        left -= len(chunk)


def receive_push() -> tuple[dict, str, dict]:
    """Stream the multipart body: (manifest, staged bundle path, raw UpdateParameters)."""
    if request.mimetype != "multipart/form-data":
        raise RedfishError.of(415, "HeaderInvalid", f"Content-Type: {request.content_type or ''}")
    if request.content_length is not None and request.content_length > UPLOAD_MAX:
        raise RedfishError(413, [message("PayloadTooLarge")])
    upload = Upload(updater.staging_dir(state_dir()), _trusted())
    try:
        _stream, form, _files = parse_form_data(request.environ, stream_factory=upload.factory, silent=False,
                                       max_form_memory_size=PARSER_BUFFER, max_content_length=UPLOAD_MAX,
                                       max_form_parts=8)
        params = _parse_params(form, upload)
        manifest = upload.finish()
    except bundle.BundleError as e:
        upload.discard()
        _drain()
        raise _bundle_refused(e) from None
    except RequestEntityTooLarge:
        upload.discard()
        _drain()
        raise RedfishError(413, [message("PayloadTooLarge")]) from None
    except OSError as e:
        upload.discard()
        if e.errno in (28, 122):   # ENOSPC, EDQUOT
            raise RedfishError(507, [message("InsufficientStorage")],
                               text="the staging area is full: the bundle was not kept") from None
        raise RedfishError(400, [message("UnrecognizedRequestBody")],
                           text="the upload was cut short") from None
    except ValueError:
        upload.discard()
        raise RedfishError(400, [message("UnrecognizedRequestBody")],
                           text="the multipart body is malformed") from None
    except BaseException:
        upload.discard()
        raise
    final = upload.path[:-len(".partial")] + ".rkb"
    os.replace(upload.path, final)
    return manifest, final, params


# -- routes ---------------------------------------------------------------------------------------

@blp.route(SERVICE)
class UpdateService(RedfishView):
    entity = "UpdateService"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self):
        return service_doc()

    def patch(self):
        from .update_settings import apply_patch
        apply_patch(json_body(), service_doc())
        return json_response(service_doc())


@blp.route(PUSH)
class MultipartPush(RedfishView):
    entity = "UpdateService"   # the MultipartHttpPushUri is the service's POST
    privileges = declare(entity, "POST")

    def post(self):
        manifest, path, raw = receive_push()
        try:
            params = update_parameters(raw, "multipart update", UPDATE_PARAMETERS)
            targets = check_targets(manifest, params)
        except BaseException:   # refused (or failed): the staged bundle goes at once
            _unlink(path)
            raise
        tid = start_task({"bundle": path, "targets": targets, "apply_time": params["apply_time"],
                          "force": params["force"], "manifest": manifest})
        return accepted(tid)


@blp.route(f"{SERVICE}/Actions/{SIMPLE}")
class SimpleUpdate(RedfishView):
    entity = "UpdateService"
    privileges = declare(entity, "POST")

    def post(self):
        body = json_body()
        uri = body.get("ImageURI")
        if "ImageURI" not in body:
            raise RedfishError.of(400, "ActionParameterMissing", SIMPLE, "ImageURI")
        if not isinstance(uri, str) or len(uri) > URI_MAX:
            raise RedfishError.of(400, "ActionParameterValueTypeError", uri, "ImageURI", SIMPLE)
        protocol = body.get("TransferProtocol")
        if protocol is not None and protocol != "HTTPS":
            raise RedfishError(400, [message("ActionParameterNotSupported", str(protocol), SIMPLE)],
                               text="only HTTPS downloads are accepted (no HTTP, FTP, TFTP …)")
        if "://" not in uri:
            if protocol != "HTTPS":   # the schema: no scheme and no protocol means plain HTTP
                raise RedfishError(400, [message("ActionParameterValueFormatError", uri, "ImageURI", SIMPLE)],
                                   text="an ImageURI without a scheme would mean plain HTTP: "
                                        "give https://… or TransferProtocol HTTPS")
            uri = "https://" + uri
        problem = updater.check_image_uri(uri)
        if problem:
            raise RedfishError(400, [message("ActionParameterValueFormatError", uri, "ImageURI", SIMPLE)],
                               text=problem)
        params = update_parameters({k: v for k, v in body.items() if k not in ("ImageURI", "TransferProtocol")},
                                   SIMPLE, SIMPLE_PARAMETERS)
        _trusted()
        units = unit_ids()
        for t, c in params["targets"]:
            fw = store().firmware(t, c)
            if fw and fw["trial"]:
                raise RedfishError(409, [events.message("UpdateInProgress")])
        tid = start_task({"image_uri": uri, "targets": params["targets"] or None,
                          "apply_time": params["apply_time"], "force": params["force"], "units": units})
        return accepted(tid)


def activation(target: str, component: str, slot: str) -> int:
    """A task for switching to ``slot`` by hand; the agent refuses what it must (409)."""
    s = store()
    tid = s.add_task(principal().username, "Firmware activation",
                     {"activate": [target, component, slot]}, [], time.time(), state="Running")
    updater.record(s, tid, [events.message("TaskStarted", str(tid))])
    try:
        result = client.run_command(s, state_dir(), firmware.RMC, f"activate:{target}:{component}:{slot}:{tid}")
    except client.AgentUnavailable:
        result = {"state": "rejected", "message": "the rack agent did not answer"}
    if result["state"] != "done":
        s.delete_task(tid, force=True)
        err = message("ActionParameterValueConflict", "Targets", firmware.inventory_uri(target, component, slot))
        raise RedfishError(409, [err], text=f"cannot activate: {result['message']}")
    return tid


def _inventory_targets(body: dict, action: str, required: bool) -> list[tuple[str, str, str]]:
    unknown = [k for k in body if k != "Targets" and not k.startswith("@")]
    if unknown:
        raise RedfishError.of(400, "ActionParameterUnknown", action, unknown[0])
    if "Targets" not in body:
        if required:
            raise RedfishError.of(400, "ActionParameterMissing", action, "Targets")
        return []
    raw = body["Targets"]
    if not isinstance(raw, list) or not raw or len(raw) > 16:
        raise RedfishError.of(400, "ActionParameterValueTypeError", raw, "Targets", action)
    out = []
    for item in raw:
        uri = item.get("@odata.id") if isinstance(item, dict) else item
        parsed = (firmware.parse_inventory_id(uri[len(firmware.INVENTORY) + 1:])
                  if isinstance(uri, str) and uri.startswith(firmware.INVENTORY + "/") else None)
        if parsed is None:
            raise RedfishError.of(400, "ActionParameterValueError", str(uri), "Targets", action)
        out.append(parsed)
    return out


@blp.route(f"{SERVICE}/Actions/{ACTIVATE}")
class Activate(RedfishView):
    entity = "UpdateService"
    privileges = declare(entity, "POST")

    def post(self):
        targets = _inventory_targets(json_body(), ACTIVATE, required=True)
        if len(targets) != 1:
            raise RedfishError(400, [message("ActionParameterValueError", "Targets", "Targets", ACTIVATE)],
                               text="activate one slot per request")
        return accepted(activation(*targets[0]))


@blp.route(firmware.INVENTORY)
class FirmwareInventory(RedfishView):
    entity = "SoftwareInventoryCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        members = [firmware.inventory_uri(t, c, slot) for t, c in firmware.components_of(unit_ids())
                   if store().firmware(t, c) for slot in firmware.SLOTS]
        return collection("SoftwareInventoryCollection",
                          "Firmware Inventory", firmware.INVENTORY, members)


def _slot_of(inv_id: str) -> tuple[str, str, str]:
    parsed = firmware.parse_inventory_id(inv_id)
    if parsed is None or (parsed[0] != firmware.RMC and parsed[0] not in unit_ids()):
        raise not_found("SoftwareInventory", inv_id)
    return parsed


@blp.route(f"{firmware.INVENTORY}/<inv_id>")
class SoftwareInventory(RedfishView):
    entity = "SoftwareInventory"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, inv_id):
        return inventory_doc(*_slot_of(inv_id))


@blp.route(f"{firmware.INVENTORY}/<inv_id>/Actions/{SW_ACTIVATE}")
class ActivateSlot(RedfishView):
    entity = "SoftwareInventory"
    privileges = declare(entity, "POST")

    def post(self, inv_id):
        target, component, slot = _slot_of(inv_id)
        body = json_body() if request.get_data(cache=True).strip() else {}
        for t in _inventory_targets(body, SW_ACTIVATE, required=False):
            if t != (target, component, slot):
                raise RedfishError.of(400, "ActionParameterValueError", firmware.inventory_uri(*t), "Targets",
                                      SW_ACTIVATE)
        return accepted(activation(target, component, slot))

