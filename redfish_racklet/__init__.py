"""redfish-racklet: the Redfish service of the Racklet rack's Rack Management Controller."""

__version__ = "0.1.0"
