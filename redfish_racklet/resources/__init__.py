"""Every blueprint the service serves, in one list: this file is the map of the API.

One module per Redfish resource family; ``create_app`` registers exactly these.
"""

from . import (account_service, chassis, managers, metadata, sensors, service_root,
               session_service, systems)

BLUEPRINTS = [
    service_root.blp,
    metadata.blp,
    systems.blp,
    chassis.blp,
    sensors.blp,
    managers.blp,
    account_service.blp,
    session_service.blp,
]
