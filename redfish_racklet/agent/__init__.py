"""The rack agent: the one process that owns the hardware.

``agent.main`` runs it; ``agent.client`` is the API workers' side of the command
path; ``agent.power`` is the pure logic of power states and resets, shared by both.
"""

SOCKET_NAME = "agent.sock"  # in the state directory; 0600, owner only
