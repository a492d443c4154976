"""Start, stop and supervise one circulation pump."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .config import MAX_PRESSURE_BAR, MIN_FLOW_LPM, POLL_INTERVAL_S, SPIN_UP_SECONDS

log = logging.getLogger(__name__)

# Modbus holding registers on the drive.
REG_COMMAND = 40001
REG_SPEED_SETPOINT = 40002
REG_PRESSURE = 40010
REG_FLOW = 40011
CMD_RUN, CMD_STOP, CMD_COAST = 1, 0, 2


class PumpFault(RuntimeError):
    """The drive reported a fault or a limit was exceeded."""


@dataclass
class Reading:
    pressure_bar: float
    flow_lpm: float
    at: float = field(default_factory=time.monotonic)


class PumpController:
    """Drives one pump through its variable-frequency drive and keeps it inside plant limits.

    All writes go through `_write`, so a dry-run controller (client=None) can be used in tests.
    """

    def __init__(self, pump_id: str, client=None, *, max_pressure_bar: float = MAX_PRESSURE_BAR):
        self.pump_id = pump_id
        self.client = client
        self.max_pressure_bar = max_pressure_bar
        self.running = False
        self.speed_pct = 0.0
        self.history: list[Reading] = []
        self.last_stop_reason: str | None = None

    def _write(self, register: int, value: int) -> None:
        if self.client is None:
            log.debug("dry run: %s register %d <- %d", self.pump_id, register, value)
            return
        self.client.write_register(register, value, unit=1)

    def _read(self, register: int) -> float:
        if self.client is None:
            return 0.0
        return self.client.read_holding_registers(register, 1, unit=1).registers[0] / 100.0

    def start(self, speed_pct: float = 60.0) -> None:
        """Spin the pump up to speed_pct of nominal speed, refusing if pressure is already high."""
        if not 10.0 <= speed_pct <= 100.0:
            raise ValueError(f"speed must be 10-100%, got {speed_pct}")
        pressure = self._read(REG_PRESSURE)
        if pressure >= self.max_pressure_bar:
            raise PumpFault(f"{self.pump_id}: refusing to start at {pressure:.2f} bar")
        self._write(REG_SPEED_SETPOINT, int(speed_pct * 100))
        self._write(REG_COMMAND, CMD_RUN)
        self.running = True
        self.speed_pct = speed_pct
        log.info("%s started at %.0f%%", self.pump_id, speed_pct)

    def set_speed(self, speed_pct: float) -> None:
        """Change the setpoint of a running pump; ramping is done by the drive itself."""
        if not self.running:
            raise PumpFault(f"{self.pump_id}: not running")
        self._write(REG_SPEED_SETPOINT, int(max(10.0, min(100.0, speed_pct)) * 100))
        self.speed_pct = speed_pct

    def poll(self) -> Reading:
        """Read pressure and flow once; trips the pump when pressure exceeds the limit."""
        reading = Reading(self._read(REG_PRESSURE), self._read(REG_FLOW))
        self.history.append(reading)
        del self.history[:-600]
        if reading.pressure_bar > self.max_pressure_bar:
            self.emergency_stop(f"pressure {reading.pressure_bar:.2f} bar > {self.max_pressure_bar} bar")
        elif self.running and reading.flow_lpm < MIN_FLOW_LPM and self._spun_up():
            log.warning("%s low flow: %.1f l/min", self.pump_id, reading.flow_lpm)
        return reading

    def _spun_up(self) -> bool:
        return len(self.history) * POLL_INTERVAL_S > SPIN_UP_SECONDS

    def emergency_stop(self, reason: str, timeout_s: float = 2.5) -> bool:
        """Cut the drive now and wait up to timeout_s for the flow to stop.

        Coasting is used instead of a ramped stop: a ramp keeps the impeller driven while the
        pressure is already too high. Returns True when the pump stopped within the timeout.
        """
        log.error("%s EMERGENCY STOP: %s", self.pump_id, reason)
        self._write(REG_COMMAND, CMD_COAST)
        self.running = False
        self.speed_pct = 0.0
        self.last_stop_reason = reason
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._read(REG_FLOW) < 1.0:
                return True
            time.sleep(POLL_INTERVAL_S)
        log.critical("%s did not stop within %.1f s", self.pump_id, timeout_s)
        return False

    def stop(self) -> None:
        """A normal, ramped stop."""
        self._write(REG_COMMAND, CMD_STOP)
        self.running = False
        self.speed_pct = 0.0
        self.last_stop_reason = "operator stop"


def supervise(controllers: list[PumpController], cycles: int | None = None) -> None:
    """Poll every pump forever (or for `cycles` rounds), isolating failures per pump."""
    n = 0
    while cycles is None or n < cycles:
        for c in controllers:
            try:
                c.poll()
            except PumpFault as e:
                log.error("%s", e)
        time.sleep(POLL_INTERVAL_S)
        n += 1
