"""Control of the plant's circulation pumps over the Modbus gateway."""

from .config import MAX_PRESSURE_BAR, PUMP_IDS
from .controller import PumpController, PumpFault

__all__ = ["MAX_PRESSURE_BAR", "PUMP_IDS", "PumpController", "PumpFault"]
