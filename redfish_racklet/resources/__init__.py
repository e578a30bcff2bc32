"""Every blueprint the service serves, in one list: this file is the map of the API.

One module per Redfish resource family; ``create_app`` registers exactly these.
"""

from . import (account_service, chassis, managers, metadata, sensors, service_root,
               session_service, systems)
from . import chassis_power, chassis_thermal, power_equipment
from . import manager_network, system_parts
from . import log_services
from . import certificate_service
from . import event_service
from . import task_service, update_service
from . import telemetry_service
from . import browser
from . import openapi
from . import assembly

BLUEPRINTS = [
    service_root.blp,
    metadata.blp,
    systems.blp,
    system_parts.blp,
    chassis.blp,
    assembly.blp,
    chassis_power.blp,
    chassis_thermal.blp,
    power_equipment.blp,
    sensors.blp,
    managers.blp,
    manager_network.blp,
    log_services.blp,
    account_service.blp,
    session_service.blp,
    certificate_service.blp,
    event_service.blp,
    task_service.blp,
    update_service.blp,
    telemetry_service.blp,
    openapi.blp,
    browser.blp,
]
