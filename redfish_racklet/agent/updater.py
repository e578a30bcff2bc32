"""Firmware updates, the agent's side: write the inactive slot, verify, try once, commit or fall back.

Two threads share the work, so that neither a 256 MiB copy nor a slow download ever
stalls the agent's loop:

- the **worker thread** (``_run``) fetches (``SimpleUpdate``, automatic updates) and
  writes slots: the bundle is re-verified while it is copied (``bundle.verified_payload``
  raises before the slot file is renamed into place, so nothing unverified lands), then
  the slot is read back and its SHA-256 compared with the signed manifest's;
- the **agent's loop** (``tick``, ``before_rail_on``) owns the boot state: it arms a
  verified slot for one trial boot, resets the device, and judges the trial — the
  device came up from the trial slot: commit it and raise the security floor; it came up
  from the old slot, or not at all within ``trial_seconds``: cut the rail (the one-shot
  flag is spent, so the unit boots its default) and report the fallback.

Every step is saved in the store first; ``start`` resolves what a crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .. import __version__, bundle, firmware
from ..updates import (AUTO_MIN_INTERVAL, auto_settings, check_image_uri, new_task, record, staging_dir,
                       trusted_keys)
from ..drivers.slots import SlotError
from . import delivery, events

log = logging.getLogger("racklet.agent")

FETCH_TIMEOUT = 30.0         # seconds of silence before a download is given up
DEFAULT_TRIAL_SECONDS = 120.0


@dataclass
class Activation:
    target: str
    component: str
    task: int | None


class Updater:
    def __init__(self, agent, devices: dict, state_dir: str, trial_seconds: float = DEFAULT_TRIAL_SECONDS):
        self.agent = agent
        self.store = agent.store
        self.devices = devices              # (target, component) -> drivers.slots device
        self.state_dir = state_dir
        self.trial_seconds = trial_seconds
        self.jobs: queue.Queue = queue.Queue()
        self.activations: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_auto = 0.0

    # -- lifecycle (agent's loop) ---------------------------------------------------------------
    def start(self) -> None:
        """Seed factory slots, resolve what a crash interrupted, start the worker."""
        now = self.agent.wall()
        for (target, component), dev in self.devices.items():
            for name in dev.clean_partials():
                log.warning("firmware %s/%s: removed the partial file %s of an interrupted write",
                            target, component, name)
            self.store.ensure_firmware(target, component, self._factory(target, component, dev), now)
            self._resolve_writes(target, component, dev)
        staging = staging_dir(self.state_dir)
        for name in os.listdir(staging):   # an upload or download cut short by a restart
            os.unlink(os.path.join(staging, name))
        for fw in self.store.firmware_all():
            if fw["staged"] and fw["apply"] != "OnReset" and not fw["trial"]:
                # written for an Immediate update, but its activation (queued in memory) died
                # with the agent: un-stage and erase it, so its task fails below as interrupted
                self.store.set_firmware(fw["target"], fw["component"], staged=None, task=None)
                try:
                    self.devices[(fw["target"], fw["component"])].erase(fw["staged"])
                except (KeyError, SlotError) as e:
                    log.warning("firmware %s/%s: cannot erase slot %s: %s", fw["target"], fw["component"],
                                fw["staged"], e)
                self.store.clear_slot(fw["target"], fw["component"], fw["staged"])
        for task in self.store.running_tasks():
            if task["state"] != "Pending" and not self._on_trial(task["id"]):
                self._fail(task, "interrupted", "the service restarted before the update finished; "
                           "the active slot was not changed")
        rmc = self.devices.get((firmware.RMC, "rmc"))
        fw = self.store.firmware(firmware.RMC, "rmc")
        if rmc is not None and fw is not None:
            if fw["staged"] and fw["apply"] == "OnReset" and not fw["trial"]:
                self.activate(firmware.RMC, "rmc", fw["task"])   # this start is the reset it waited for
            else:
                self._boot_rmc(rmc)
        self._thread = threading.Thread(target=self._run, name="updater", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.jobs.put(None)
        if self._thread:
            self._thread.join(timeout=5)

    def submit(self, task_id: int) -> None:
        self.jobs.put(task_id)

    def _factory(self, target: str, component: str, dev) -> dict | None:
        """What slot A holds at delivery. A simulated rack writes a small image; a real one
        records the manifest's version of what is installed."""
        if self.agent.hardware.sim is not None and dev.size("A") is None:
            version = __version__ if component == "rmc" else "1.0.0"
            dev.write("A", [f"racklet-sim {component} firmware {version}\n".encode()])
        digest = dev.digest("A")
        if component == "boot":
            spec = next((u for u in self.agent.manifest.units if u.id == target), None)
            version = (spec.bios_version if spec else "") or "1.0.0"
        elif component == "rmc":
            version = __version__
        else:
            version = "1.0.0"
        return {"version": version, "security_version": 0, "sha256": digest, "size": dev.size("A")}

    def _resolve_writes(self, target: str, component: str, dev) -> None:
        """A slot left 'writing' by a crash: its file is whatever the atomic rename left
        (old or new bytes); neither is trusted, so the slot is erased and forgotten."""
        for slot in firmware.SLOTS:
            row = self.store.slot(target, component, slot)
            if row and row["state"] == "writing":
                fw = self.store.firmware(target, component)
                if slot != fw["active"]:
                    try:
                        dev.erase(slot)
                    except SlotError as e:
                        log.warning("firmware %s/%s: cannot erase slot %s: %s", target, component, slot, e)
                self.store.clear_slot(target, component, slot)
                log.warning("firmware %s/%s: slot %s was being written when the agent stopped; erased",
                            target, component, slot)

    def _on_trial(self, task_id: int) -> bool:
        return any(fw["task"] == task_id and (fw["trial"] or fw["staged"]) for fw in self.store.firmware_all())

    # -- the worker thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.jobs.get(timeout=1.0)
            except queue.Empty:
                job = None
            if self._stop.is_set():
                return
            try:
                if job is not None:
                    self._install(job)
                self._maybe_auto()
            except Exception:  # noqa: BLE001 — the worker must survive any one job
                log.exception("updater: job %s failed", job)
                if job is not None:
                    task = self.store.task(job)
                    if task and task["state"] in ("New", "Running"):
                        self._fail(task, "internal", "an internal error stopped the update")

    def _install(self, task_id: int) -> None:
        task = self.store.task(task_id)
        if task is None or task["state"] not in ("New", "Running"):
            return
        p = task["params"]
        path = p.get("bundle")
        try:
            if p.get("image_uri"):
                path = self._download(task, p["image_uri"])
            trusted = trusted_keys(self.store)
            manifest = bundle.verify_file(path, trusted, firmware.MAX_IMAGE_BYTES).to_dict()
            targets = p.get("targets") or self._matching(manifest)
            self.store.update_task(task_id, params={"manifest": manifest, "targets": targets})
            done = 0
            for target, component in targets:
                self._write_target(task_id, path, trusted, manifest, target, component, p, done, len(targets))
                done += 1
        except _TaskFailed as e:
            self._fail(self.store.task(task_id), e.key, e.reason, e.args_)
            return
        finally:
            if path and os.path.dirname(os.path.abspath(path)) == os.path.abspath(staging_dir(self.state_dir)):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        apply = p.get("apply_time", "Immediate")
        image = firmware.image_name(manifest)
        if apply == "OnReset":
            msgs = [events.message("AwaitToActivate", image, firmware.device_uri(t, c)) for t, c in targets]
            record(self.store, task_id, msgs, state="Pending", percent=50)
        else:
            self.store.update_task(task_id, percent=60)
            for target, component in targets:
                self.activations.put(Activation(target, component, task_id))

    def _write_target(self, task_id, path, trusted, manifest, target, component, p, done, total) -> None:
        uri = firmware.device_uri(target, component)
        image = firmware.image_name(manifest)
        fw = self.store.firmware(target, component)
        dev = self.devices.get((target, component))
        if fw is None or dev is None:
            raise _TaskFailed("UpdateNotApplicable", f"{uri} has no firmware slots", [image, uri])
        try:
            firmware.check(manifest, target, component, self.hardware_id(target), self._active(target, component),
                           fw["floor"], bool(p.get("force")))
        except firmware.Refused as e:
            raise _TaskFailed(e.key, e.reason, [uri, image] if e.key.startswith("UpdateSkipped") else [image, uri])
        slot = "B" if fw["active"] == "A" else "A"
        if not self.store.begin_slot_write(target, component, slot, self.agent.wall()):
            raise _TaskFailed("ApplyFailed", f"slot {slot} of {uri} is on trial", [image, uri])
        record(self.store, task_id, [events.message("TransferringToComponent", image, uri)])
        log.info("firmware %s/%s: writing %s into slot %s", target, component, image, slot)
        try:
            dev.write(slot, bundle.verified_payload(path, trusted, firmware.MAX_IMAGE_BYTES))
            record(self.store, task_id, [events.message("VerifyingAtComponent", image, uri)])
            if dev.digest(slot) != manifest["sha256"]:
                raise SlotError(f"slot {slot} reads back differently from what was written")
        except (SlotError, bundle.BundleError, OSError) as e:
            self.store.clear_slot(target, component, slot)
            key = "VerificationFailed" if isinstance(e, bundle.BundleError) else "ApplyFailed"
            raise _TaskFailed(key, f"{uri}: {getattr(e, 'message', None) or e}", [image, uri])
        apply = p.get("apply_time", "Immediate")
        self.store.finish_slot_write(target, component, slot, manifest, self.agent.wall(),
                                     "OnReset" if apply == "OnReset" else None, task_id)
        self.store.update_task(task_id, percent=int(10 + 40 * (done + 1) / total))

    def _download(self, task: dict, uri: str) -> str:
        """Stream ``uri`` (https only, certificate checked) into the staging area,
        through the bundle check, so a wrong file stops at its header."""
        out = os.path.join(staging_dir(self.state_dir), f"download-{task['id']}.partial")
        try:
            _fetch_bundle(uri, out, self._ssl(), trusted_keys(self.store))
        except bundle.BundleError as e:
            raise _TaskFailed("VerificationFailed", f"{uri}: {e.message}", [uri, firmware.RMC])
        except (OSError, ValueError) as e:
            raise _TaskFailed("TransferFailed", f"{uri}: {e}", [uri, firmware.RMC])
        return out

    def _ssl(self):
        """The rack's trust (system CAs + the trust file), unless an Administrator turned
        VerifyRemoteServerCertificate off: then TLS still encrypts, but any certificate
        passes (the bundle's own signature is checked all the same)."""
        ctx = delivery.ssl_context(self.state_dir)
        if self.store.get_meta("update_verify_remote", "1") == "0":
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _matching(self, manifest: dict) -> list[tuple[str, str]]:
        """No Targets: every device of the bundle's component and hardware."""
        return [(t, c) for (t, c) in self.devices
                if c == manifest["component"] and self.hardware_id(t) in manifest["compatible"]]

    def hardware_id(self, target: str) -> str:
        return self.agent.manifest.hardware_id(target)

    def _active(self, target: str, component: str) -> dict | None:
        fw = self.store.firmware(target, component)
        return self.store.slot(target, component, fw["active"]) if fw else None

    # -- automatic updates (worker thread) ------------------------------------------------------
    def _maybe_auto(self) -> None:
        settings = auto_settings(self.store)
        now = time.monotonic()
        if not settings["enabled"] or not settings["feed"] or now < self._next_auto:
            return
        self._next_auto = now + max(AUTO_MIN_INTERVAL, settings["interval"])
        try:
            urls = fetch_feed(settings["feed"], self._ssl())
        except (OSError, ValueError) as e:
            log.warning("automatic updates: cannot read the feed %s: %s", settings["feed"], e)
            return
        for url in urls:
            self._auto_one(url, settings)

    def _auto_one(self, url: str, settings: dict) -> None:
        out = os.path.join(staging_dir(self.state_dir), "auto.partial")
        try:
            manifest = _fetch_bundle(url, out, self._ssl(), trusted_keys(self.store))
        except (bundle.BundleError, OSError, ValueError) as e:
            log.warning("automatic updates: %s refused: %s", url, e)
            if os.path.exists(out):
                os.unlink(out)
            return
        m = manifest.to_dict()
        wanted = []
        for target, component in self._matching(m):
            active = self._active(target, component)
            fw = self.store.firmware(target, component)
            if active and firmware.version_key(m["version"]) > firmware.version_key(active.get("version")) \
                    and m["security_version"] >= fw["floor"] and not fw["trial"]:
                wanted.append([target, component])
        if not wanted:
            os.unlink(out)
            return
        final = os.path.join(staging_dir(self.state_dir), f"auto-{m['sha256'][:16]}.rkb")
        os.replace(out, final)
        tid = new_task(self.store, "automatic", {"bundle": final, "targets": wanted,
                                                 "apply_time": settings["apply_time"]}, self.agent.wall())
        log.info("automatic updates: task %s installs %s on %s", tid, firmware.image_name(m), wanted)
        self._install(tid)

    # -- the agent's loop: activation and trials ---------------------------------------------
    def tick(self) -> None:
        while True:
            try:
                act = self.activations.get_nowait()
            except queue.Empty:
                break
            self.activate(act.target, act.component, act.task)
        for fw in self.store.firmware_all():
            if fw["trial"]:
                self._judge(fw)

    def activate(self, target: str, component: str, task: int | None, slot: str | None = None) -> None:
        """Arm the staged (or the given) slot for one trial and reset its device."""
        fw = self.store.firmware(target, component)
        dev = self.devices[(target, component)]
        slot = slot or fw["staged"]
        if slot is None or fw["trial"]:
            return
        try:
            dev.arm_trial(slot)
        except SlotError as e:
            self._fail(self.store.task(task) if task else None, "ActivateFailed", str(e))
            return
        self.store.set_firmware(target, component, trial=slot, trial_since=None, task=task, staged=None, apply=None)
        image = self._image(target, component, slot)
        if task:
            record(self.store, task, [events.message("ApplyingOnComponent", image, firmware.device_uri(target, component))],
                   state="Running", percent=70)
        log.info("firmware %s/%s: slot %s armed for one trial boot", target, component, slot)
        if component == "rmc":
            self._boot_rmc(dev)
        elif component == "bmc":
            self._reset_bmc(target)
        else:
            hw = self.agent.hw[target]
            if hw.get():   # a unit that is off tries the slot when it is next powered on
                self.agent._power_off(target)
                self.agent._power_on_or_log(target)

    def activate_by_hand(self, target: str, component: str, slot: str, task: int | None) -> None:
        """Switch to a slot by hand (SoftwareInventory.Activate, ActiveSoftwareImage): the
        same trial as an update; refused for an empty slot, the active one, one below the
        security floor, or while another trial runs."""
        from .power import Conflict
        fw = self.store.firmware(target, component)
        row = self.store.slot(target, component, slot)
        if fw is None or row is None or (target, component) not in self.devices:
            raise Conflict(f"no firmware slot {target}/{component}/{slot}")
        if fw["trial"]:
            raise Conflict(f"slot {fw['trial']} of {firmware.device_uri(target, component)} is on trial")
        if row["state"] != "valid":
            raise Conflict(f"slot {slot} holds no verified image")
        if slot == fw["active"]:
            raise Conflict(f"slot {slot} is already active")
        if (row["security_version"] or 0) < fw["floor"]:
            raise Conflict(f"slot {slot} has security version {row['security_version']}, below the floor "
                           f"{fw['floor']} (rollback refused)")
        self.activate(target, component, task, slot)

    def before_rail_on(self, uid: str) -> None:
        """The agent is switching a unit's rail on: a slot staged 'OnReset' is armed now;
        the trial's clock starts with the rail."""
        fw = self.store.firmware(uid, "boot")
        if fw is None:
            return
        if fw["staged"] and fw["apply"] == "OnReset" and not fw["trial"]:
            self.activate(uid, "boot", fw["task"])
            fw = self.store.firmware(uid, "boot")
        if fw["trial"] and fw["trial_since"] is None:
            self.store.set_firmware(uid, "boot", trial_since=self.agent.wall())

    def before_bmc_reset(self, uid: str) -> bool:
        """A BMC reset was asked for: a slot staged 'OnReset' is tried now (True: the
        trial's reset is done here)."""
        fw = self.store.firmware(uid, "bmc")
        if fw and fw["staged"] and fw["apply"] == "OnReset" and not fw["trial"]:
            self.activate(uid, "bmc", fw["task"])
            return True
        return False

    def _reset_bmc(self, uid: str) -> None:
        hw = self.agent.hw[uid]
        if hasattr(hw, "reset_bmc"):
            hw.reset_bmc()
        self.store.set_firmware(uid, "bmc", trial_since=self.agent.wall())

    def _boot_rmc(self, dev) -> None:
        """The RMC's software 'boots' when the agent starts (or is told to activate): a
        trial slot is taken once; the agent running again is its health check."""
        fw = self.store.firmware(firmware.RMC, "rmc")
        if fw is None or not (fw["trial"] or dev.trial()):
            return
        if self.agent.hardware.sim is not None:
            from ..drivers.sim import slot_boot
            healthy = slot_boot(dev)()
        else:   # the agent runs again: that is the health check of the RMC's software
            dev.boot()
            healthy = True
        self.store.set_firmware(firmware.RMC, "rmc", trial_since=self.agent.wall())
        self._verdict(self.store.firmware(firmware.RMC, "rmc"), healthy and dev.booted() == fw["trial"])

    def _judge(self, fw: dict) -> None:
        target, component = fw["target"], fw["component"]
        if fw["trial_since"] is None:
            return   # waiting for the device to be reset
        dev = self.devices[(target, component)]
        if component == "boot":
            hw = self.agent.hw[target]
            if not hw.get():
                return
            if hw.state() == "running":
                self._verdict(fw, dev.booted() in (None, fw["trial"]))
                return
        elif component == "bmc":
            hw = self.agent.hw[target]
            state = hw.bmc_state() if hasattr(hw, "bmc_state") else "ready"
            if state == "ready":
                self._verdict(fw, dev.booted() in (None, fw["trial"]))
                return
        if self.agent.wall() - fw["trial_since"] > self.trial_seconds:
            self._verdict(fw, False, timed_out=True)

    def _verdict(self, fw: dict, good: bool, timed_out: bool = False) -> None:
        target, component, slot = fw["target"], fw["component"], fw["trial"]
        dev = self.devices[(target, component)]
        uri = firmware.device_uri(target, component)
        image = self._image(target, component, slot)
        task = self.store.task(fw["task"]) if fw["task"] else None
        if good:
            dev.commit(slot)
            row = self.store.slot(target, component, slot)
            self.store.set_firmware(target, component, active=slot, trial=None, trial_since=None, task=None,
                                    floor=max(fw["floor"], row["security_version"] or 0))
            if not task:   # a task's messages reach the journal with the task (record)
                self.agent.log.write("UpdateSuccessful", [uri, image], uri, _unit(target))
            log.info("firmware %s/%s: slot %s came up healthy; it is now the default", target, component, slot)
            if task:
                record(self.store, task["id"], [events.message("UpdateSuccessful", uri, image),
                                                events.message("TaskCompletedOK", str(task["id"]))],
                       state="Completed", status="OK", percent=100, ended=self.agent.wall())
            return
        dev.disarm()
        self.store.set_firmware(target, component, trial=None, trial_since=None, task=None)
        why = (f"{uri} did not come up healthy from slot {slot} within {self.trial_seconds:g} s"
               if timed_out else f"{uri} did not come up healthy from slot {slot}")
        log.warning("firmware %s/%s: %s; falling back to slot %s", target, component, why, fw["active"])
        if not task:
            self.agent.log.write("ActivateFailed", [image, uri], uri, _unit(target))
        if component == "boot":   # the one-shot flag is spent: a power cycle boots the default
            self.agent._power_off(target)
            self.agent._power_on_or_log(target)
        elif component == "bmc":
            self._reset_bmc_default(target)
        if task:
            self._fail(task, "ActivateFailed", f"{why}; it runs slot {fw['active']} again", [image, uri])

    def _reset_bmc_default(self, uid: str) -> None:
        hw = self.agent.hw[uid]
        if hasattr(hw, "reset_bmc"):
            hw.reset_bmc()

    def _image(self, target: str, component: str, slot: str) -> str:
        row = self.store.slot(target, component, slot) or {}
        return f"{component}-{row.get('version') or 'unknown'}"

    # -- tasks -------------------------------------------------------------------------------------
    def _fail(self, task: dict | None, key: str, reason: str, args: list | None = None) -> None:
        """End a task in Exception: the registry message of what went wrong, TaskAborted,
        and ``reason`` in words (the Task's ``Oem.Racklet.Reason``)."""
        if task is None:
            return
        first = {"interrupted": ("ServiceShuttingDown", []), "internal": ("InternalError", [])}.get(key, (key, args or []))
        msgs = [events.message(first[0], *first[1]), events.message("TaskAborted", str(task["id"]))]
        record(self.store, task["id"], msgs, state="Exception", status="Critical", ended=self.agent.wall(),
               params={"reason": reason})
        log.warning("task %s failed: %s", task["id"], reason)


class _TaskFailed(Exception):
    def __init__(self, key: str, reason: str, args: list):
        super().__init__(reason)
        self.key, self.reason, self.args_ = key, reason, args


def _unit(target: str) -> str:
    return "" if target == firmware.RMC else target


# -- fetching over HTTPS ------------------------------------------------------------------------

def _open(uri: str, ctx):
    problem = check_image_uri(uri)
    if problem:
        raise ValueError(problem)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), delivery._NoRedirect())
    return opener.open(urllib.request.Request(uri, headers={"User-Agent": "redfish-racklet"}),
                       timeout=FETCH_TIMEOUT)


def _fetch_bundle(uri: str, out: str, ctx, trusted: dict) -> bundle.Manifest:
    """Download through the Verifier: a wrong header or signature stops the download."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f, _open(uri, ctx) as r:
            v = bundle.Verifier(trusted, firmware.MAX_IMAGE_BYTES, None)
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                v.feed(chunk)
                f.write(chunk)
            manifest = v.finish()
            f.flush()
            os.fsync(f.fileno())
        return manifest
    except BaseException:
        if os.path.exists(out):
            os.unlink(out)
        raise


FEED_MAX = 64 * 1024


def fetch_feed(uri: str, ctx) -> list[str]:
    """The automatic-update feed: a JSON object ``{"Bundles": ["https://…", …]}`` (relative
    locations resolve against the feed's); at most 16 entries, https only."""
    with _open(uri, ctx) as r:
        raw = r.read(FEED_MAX + 1)
    if len(raw) > FEED_MAX:
        raise ValueError("the feed is larger than 64 KiB")
    doc = json.loads(raw)
    items = doc.get("Bundles") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError('the feed is not {"Bundles": [...]}')
    urls = [urllib.parse.urljoin(uri, i) for i in items[:16]]
    return [u for u in urls if check_image_uri(u) is None]
