"""What the agent (and the API, for a ClearLog) writes to the event log: messages of the DMTF standard registries.

Only the messages the agent uses, with their registry's exact text and severity (a
test checks them against ``../shared/redfish/registries``). ``Log.write`` fills in the
arguments and appends the entry to the store.
"""

from __future__ import annotations

import time
from typing import Callable

from ..messages import message as base_message
from ..store import Store

# (registry prefix and version, message key) -> (severity, message with %1..%n)
MESSAGES = {
    ("ResourceEvent.1.4.3", "ResourceCreated"): ("OK", "The resource was created successfully."),
    ("ResourceEvent.1.4.3", "ResourceRemoved"): ("OK", "The resource was removed successfully."),
    ("ResourceEvent.1.4.3", "ResourcePoweredOn"): ("OK", "The resource '%1' has powered on."),
    ("ResourceEvent.1.4.3", "ResourcePoweredOff"): ("OK", "The resource '%1' has powered off."),
    ("ResourceEvent.1.4.3", "ResourceStatusChangedOK"): ("OK", "The health of resource '%1' has changed to %2."),
    ("ResourceEvent.1.4.3", "ResourceStatusChangedWarning"): (
        "Warning", "The health of resource '%1' has changed to %2."),
    ("ResourceEvent.1.4.3", "ResourceStatusChangedCritical"): (
        "Critical", "The health of resource '%1' has changed to %2."),
    ("ManagerEvent.1.0.0", "ManagerReset"): ("OK", "Manager `%1` performed a '%2' type of reset."),
    ("LogService.1.1.0", "LogCleared"): ("OK", "Log '%1' was cleared."),
    ("ResourceEvent.1.4.3", "ResourceChanged"): ("OK", "One or more resource properties have changed."),
    ("AccountSecurity.1.0.1", "UserCertificateAdded"): ("OK", "A user certificate was added to account '%1'."),
    ("AccountSecurity.1.0.1", "UserCertificateRemoved"): (
        "OK", "A user certificate was removed from account '%1'."),
    # Audit of accounts and logins (auth.py, resources/account_service.py).
    ("AccountSecurity.1.0.1", "InvalidCredentials"): ("Critical", "'%1' provided invalid credentials over '%2'."),
    ("AccountSecurity.1.0.1", "SuccessfulLogin"): ("OK", "Successful login of user '%1' from '%2' over '%3'."),
    ("AccountSecurity.1.0.1", "AccountCreated"): ("OK", "Account '%1' was created."),
    ("AccountSecurity.1.0.1", "AccountRemoved"): ("OK", "Account '%1' was removed."),
    ("AccountSecurity.1.0.1", "AccountLocked"): (
        "Critical", "Account '%1' was locked due to excessive failed authorization attempts."),
    ("AccountSecurity.1.0.1", "AccountLockoutExpired"): (
        "OK", "Account '%1' was unlocked following the expiration of a lockout timer."),
    ("AccountSecurity.1.0.1", "AccountUnlocked"): ("OK", "Account '%1' was unlocked by an administrator."),
    ("AccountSecurity.1.0.1", "AccountEnabled"): ("OK", "Account '%1' was enabled."),
    ("AccountSecurity.1.0.1", "AccountDisabled"): ("Warning", "Account '%1' was disabled."),
    ("AccountSecurity.1.0.1", "PasswordModified"): ("OK", "The password for account '%1' was changed."),
    ("AccountSecurity.1.0.1", "ManagerAccountRoleChanged"): (
        "OK", "Account '%1' has changed from role '%2' to '%3'."),
    # Threshold crossings (agent/main.py, thresholds.py).
    ("SensorEvent.1.1.0", "ReadingAboveUpperCautionThreshold"): ("Warning", "Sensor '%1' reading of %2 (%3) is above the %4 upper caution threshold."),
    ("SensorEvent.1.1.0", "ReadingAboveUpperCriticalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is above the %4 upper critical threshold."),
    ("SensorEvent.1.1.0", "ReadingAboveUpperFatalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is above the %4 upper fatal threshold."),
    ("SensorEvent.1.1.0", "ReadingBelowLowerCautionThreshold"): ("Warning", "Sensor '%1' reading of %2 (%3) is below the %4 lower caution threshold."),
    ("SensorEvent.1.1.0", "ReadingBelowLowerCriticalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is below the %4 lower critical threshold."),
    ("SensorEvent.1.1.0", "ReadingBelowLowerFatalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is below the %4 lower fatal threshold."),
    ("SensorEvent.1.1.0", "ReadingBelowUpperFatalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is now below the %4 upper fatal threshold but remains outside of normal range."),
    ("SensorEvent.1.1.0", "ReadingBelowUpperCriticalThreshold"): ("Warning", "Sensor '%1' reading of %2 (%3) is now below the %4 upper critical threshold but remains outside of normal range."),
    ("SensorEvent.1.1.0", "ReadingAboveLowerFatalThreshold"): ("Critical", "Sensor '%1' reading of %2 (%3) is now above the %4 lower fatal threshold but remains outside of normal range."),
    ("SensorEvent.1.1.0", "ReadingAboveLowerCriticalThreshold"): ("Warning", "Sensor '%1' reading of %2 (%3) is now above the %4 lower critical threshold but remains outside of normal range."),
    ("SensorEvent.1.1.0", "SensorReadingNormalRange"): ("OK", "Sensor '%1' reading of %2 (%3) is within normal operating range."),
    # Telemetry: a MetricReport was made (telemetry.py).
    ("Telemetry.1.1.1", "TelemetryDataCreated"): ("OK", "Telemetry data '%1', containing type '%2', was created."),
    # Firmware updates and their tasks (agent/updater.py, resources/update_service.py).
    ("Update.1.3.0", "NoTargetsDetermined"): ("OK", "No target device will be updated with image '%1'."),
    ("Update.1.3.0", "TargetDetermined"): ("OK", "The target device '%1' will be updated with image '%2'."),
    ("Update.1.3.0", "TransferringToComponent"): ("OK", "Image '%1' is being transferred to '%2'."),
    ("Update.1.3.0", "VerifyingAtComponent"): ("OK", "Image '%1' is being verified at '%2'."),
    ("Update.1.3.0", "ApplyingOnComponent"): ("OK", "Image '%1' is being applied on '%2'."),
    ("Update.1.3.0", "TransferFailed"): ("Critical", "Transfer of image '%1' to '%2' failed."),
    ("Update.1.3.0", "VerificationFailed"): ("Critical", "Verification of image '%1' at '%2' failed."),
    ("Update.1.3.0", "ApplyFailed"): ("Critical", "Installation of image '%1' to '%2' failed."),
    ("Update.1.3.0", "ActivateFailed"): ("Critical", "Activation of image '%1' on '%2' failed."),
    ("Update.1.3.0", "AwaitToActivate"): ("OK", "Awaiting for an action to proceed with activating image '%1' on '%2'."),
    ("Update.1.3.0", "UpdateSuccessful"): ("OK", "Device '%1' successfully updated with image '%2'."),
    ("Update.1.3.0", "UpdateSkippedSameVersion"): ("OK", "Device '%1' skipped the update with image '%2' because the same version is already installed."),
    ("Update.1.3.0", "UpdateSkippedVersionTooLow"): ("OK", "Device '%1' skipped the update with image '%2' due to the minimum version requirement."),
    ("Update.1.3.0", "UpdateNotApplicable"): ("Warning", "Image '%1' was not applicable to device '%2'."),
    ("Update.1.3.0", "UpdateInProgress"): ("OK", "An update is in progress."),
    ("TaskEvent.1.0.5", "TaskStarted"): ("OK", "The task with Id '%1' has started."),
    ("TaskEvent.1.0.5", "TaskCompletedOK"): ("OK", "The task with Id '%1' has completed."),
    ("TaskEvent.1.0.5", "TaskAborted"): ("Critical", "The task with Id '%1' has completed with errors."),
    ("TaskEvent.1.0.5", "TaskCancelled"): ("Warning", "Work on the task with Id '%1' was halted prior to completion due to an explicit request."),
    ("TaskEvent.1.0.5", "TaskProgressChanged"): ("OK", "The task with Id '%1' has changed to progress %2 percent complete."),
}
_BY_KEY = {key: (registry, key) for registry, key in MESSAGES}
# The messages of long operations (firmware updates) that reach the journal from a Task.
REGISTRY_KEYS = frozenset(key for registry, key in MESSAGES if registry.startswith(("Update.", "TaskEvent.")))


def message(key: str, *args) -> dict:
    """A Message object (for a Task's Messages or an error's ExtendedInfo) of a registry
    message the service uses: one of ``MESSAGES`` or of the Base registry."""
    if key not in _BY_KEY:
        return base_message(key, *args)
    registry, _ = _BY_KEY[key]
    severity, text = MESSAGES[(registry, key)]
    return {"@odata.type": "#Message.v1_3_0.Message", "MessageId": f"{registry}.{key}",
            "Message": format_message(text, list(args)), "MessageArgs": [str(a) for a in args],
            "MessageSeverity": severity}


def format_message(text: str, args: list) -> str:
    for i in range(len(args), 0, -1):  # %10 before %1
        text = text.replace(f"%{i}", str(args[i - 1]))
    return text


class Log:
    def __init__(self, store: Store, wall: Callable[[], float] = time.time):
        self.store, self.wall = store, wall

    def write(self, key: str, args: list, origin: str, unit: str = "") -> None:
        """Append message ``key`` about the resource at ``origin`` (a URI)."""
        registry, _ = _BY_KEY[key]
        severity, text = MESSAGES[(registry, key)]
        self.store.add_log(unit, severity, f"{registry}.{key}", [str(a) for a in args],
                           format_message(text, args), origin, self.wall())


# -- the resource type of an OriginOfCondition (what ResourceTypes filters match) --------

# A member of collection NAME, or the singleton NAME below its parent, is of this type.
_COLLECTIONS = {
    "Chassis": "Chassis", "Systems": "ComputerSystem", "Managers": "Manager",
    "Accounts": "ManagerAccount", "Roles": "Role", "Sessions": "Session",
    "Sensors": "Sensor", "PowerSupplies": "PowerSupply", "Fans": "Fan",
    "LogServices": "LogService", "Entries": "LogEntry", "Certificates": "Certificate",
    "EthernetInterfaces": "EthernetInterface", "Processors": "Processor", "Memory": "Memory",
    "Subscriptions": "EventDestination", "Tasks": "Task", "ElectricalBuses": "PowerDistribution",
    "Outlets": "Outlet", "MetricReports": "MetricReport", "MetricReportDefinitions": "MetricReportDefinition",
}
_SINGLETONS = {
    "Power": "Power", "Thermal": "Thermal", "PowerSubsystem": "PowerSubsystem",
    "ThermalSubsystem": "ThermalSubsystem", "NetworkProtocol": "ManagerNetworkProtocol",
    "EnvironmentMetrics": "EnvironmentMetrics", "AccountService": "AccountService",
    "SessionService": "SessionService", "EventService": "EventService",
    "CertificateService": "CertificateService", "UpdateService": "UpdateService",
    "TaskService": "TaskService", "PowerEquipment": "PowerEquipment",
}
# The types the journal's origins have (the EventService's ResourceTypes).
JOURNAL_RESOURCE_TYPES = ("AccountService", "Chassis", "ComputerSystem", "EventService", "LogService",
                          "Manager", "ManagerAccount", "MetricReport", "Outlet", "Sensor", "Task")


def resource_type(origin: str) -> str | None:
    """The Redfish type of the resource at a URI: a collection's member first (so the
    Sensor ``…/Sensors/Power`` is a Sensor), then a singleton (``…/Rack/Power``)."""
    parts = [p for p in origin.split("#")[0].split("/") if p][2:]  # after redfish, v1
    if not parts:
        return "ServiceRoot" if origin.rstrip("/") == "/redfish/v1" else None
    if len(parts) >= 2 and parts[-2] in _COLLECTIONS:
        return _COLLECTIONS[parts[-2]]
    return _SINGLETONS.get(parts[-1])
