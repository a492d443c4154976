"""Plant limits and gateway settings for the pump controllers."""

import os

# Above this the relief valve on the main header opens; we stop well before that.
MAX_PRESSURE_BAR = 8.75
MIN_FLOW_LPM = 120.0
SPIN_UP_SECONDS = 4.0
PUMP_IDS = ("pump-1", "pump-2", "pump-3")

MODBUS_HOST = os.environ.get("PUMPCTL_MODBUS_HOST", "10.20.4.17")
MODBUS_PORT = int(os.environ.get("PUMPCTL_MODBUS_PORT", "502"))
POLL_INTERVAL_S = 0.5
ALARM_WEBHOOK = "https://ops.example.internal/hooks/pump-alarms"
