"""The rack agent: the one process that owns the hardware.

``agent.main`` runs it; ``agent.client`` is the API workers' side of the command
path; ``agent.power`` is the pure logic of power states and resets, shared by both.
"""

SOCKET_NAME = "agent.sock"  # in the state directory; 0600, owner only
FACTORY_RESET = "factory_reset"  # the command (unit "RMC") that makes the agent run a factory reset
FACTORY_RESET_TIMEOUT = 10.0     # seconds a caller waits for it (units get 2.5 s to shut down)
UPDATE_PREFIX = ("update:", "activate:")  # firmware commands (unit "RMC"): see agent/updater.py
