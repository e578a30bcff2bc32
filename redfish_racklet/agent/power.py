"""Power states and resets as pure functions: what a reset does to a unit in a state.

The agent is the authority (it decides against the state it observes); the API
uses the same tables to describe what it offers.
"""

from __future__ import annotations

# ComputerSystem.ResetType values we implement, in the order clients see them.
RESET_TYPES = ("On", "ForceOn", "ForceOff", "GracefulShutdown", "GracefulRestart",
               "ForceRestart", "PowerCycle")

HOST_TO_POWER_STATE = {
    "off": "Off",
    "booting": "PoweringOn",
    "running": "On",
    "halting": "PoweringOff",
    "halted": "PoweringOff",
}

# Time the rail stays off during a PowerCycle, and how long a graceful shutdown may
# take before the agent cuts the rail anyway (a hung OS must not keep a unit on).
POWER_CYCLE_OFF_SECONDS = 1.0
GRACEFUL_TIMEOUT_SECONDS = 60.0


def power_state(rail_on: bool, host_state: str) -> str:
    return HOST_TO_POWER_STATE[host_state] if rail_on else "Off"


class Conflict(Exception):
    """The reset cannot be done in the unit's current state; nothing was changed."""


def plan_reset(reset_type: str, present: bool, state: str) -> tuple[list[str], str | None, str]:
    """Steps to run now, the follow-up intent, and the desired power afterwards.

    Steps: 'rail_on', 'rail_off', 'shutdown'. Intents (finished by the agent's loop):
    'off_when_halted', 'on_after_halt', 'on_after_cycle'.
    """
    if reset_type not in RESET_TYPES:
        raise ValueError(reset_type)
    if not present:
        raise Conflict(f"the unit is absent; it cannot be reset with {reset_type}")
    off = state == "Off"
    if reset_type in ("On", "ForceOn"):
        # Idempotent: the unit is already where it was asked to go (as bmcweb does;
        # the DMTF Use Case Checkers send On to a unit that is on and expect success).
        return (["rail_on"] if off else []), None, "On"
    if reset_type == "ForceOff":
        if off:
            raise Conflict("the unit is already Off")
        return ["rail_off"], None, "Off"
    if reset_type == "GracefulShutdown":
        if off:
            raise Conflict("the unit is already Off")
        return ["shutdown"], "off_when_halted", "Off"
    # Restarts of a unit that is off power it on, as a power button would.
    if off:
        return ["rail_on"], None, "On"
    if reset_type == "ForceRestart":
        return ["rail_off", "rail_on"], None, "On"
    if reset_type == "PowerCycle":
        return ["rail_off"], "on_after_cycle", "On"
    return ["shutdown"], "on_after_halt", "On"  # GracefulRestart


def allocated_watts(max_watts: dict[str, float], drawing: set[str]) -> float:
    """What the budget reserves: each unit that is on or powering on, at its maximum."""
    return sum(max_watts[u] for u in drawing)


def admit(uid: str, max_watts: dict[str, float], drawing: set[str], limit: float) -> None:
    """Refuse (Conflict) a power-on that would take the reserved power above ``limit``."""
    if uid in drawing:
        return
    after = allocated_watts(max_watts, drawing) + max_watts[uid]
    if after > limit + 1e-9:
        raise Conflict(f"powering it on would reserve {after:g} W of the rack's {limit:g} W power "
                       f"limit ({max_watts[uid]:g} W for this unit); power another unit off or "
                       "raise PowerLimit")
