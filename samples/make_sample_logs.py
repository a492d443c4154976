"""Write the sample plant sensor log: 4 sensors every 4 minutes for 5 hours, one pump-3 alarm.

    python samples/make_sample_logs.py           # -> samples/corpus/logs/plant_sensors.csv

Deterministic (seeded), so the committed file and a regenerated one are identical.
"""

from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

START = datetime(2024, 3, 14, 0, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=4)
ROUNDS = 75  # 75 rounds x 4 sensors = 300 rows, 00:00Z to 04:59Z
# sensor, metric, minute offset within each 4-minute round, typical value, jitter
SENSORS = [
    ("pump-1", "pressure_bar", 0, 6.2, 0.15),
    ("pump-3", "pressure_bar", 1, 6.8, 0.15),
    ("pump-2", "pressure_bar", 2, 5.9, 0.15),
    ("tank-1", "level_pct", 3, 71.0, 0.8),
]
# The incident: pump-3 pressure climbs, alarms at 02:17:00Z with 9.41 bar, is emergency-stopped.
PUMP3_INCIDENT = {
    "02:05": (8.31, "OK"),
    "02:09": (8.79, "WARN"),
    "02:13": (9.02, "WARN"),
    "02:17": (9.41, "ALARM"),
    "02:21": (0.42, "STOPPED"),
    "02:25": (0.38, "STOPPED"),
    "02:29": (5.10, "OK"),
}


def rows() -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(20240314)
    out = []
    for k in range(ROUNDS):
        for sensor, metric, offset, typical, jitter in SENSORS:
            t = START + k * STEP + timedelta(minutes=offset)
            value = typical + rng.uniform(-jitter, jitter)
            status = "OK"
            if sensor == "pump-3" and (hit := PUMP3_INCIDENT.get(t.strftime("%H:%M"))):
                value, status = hit
            out.append((t.strftime("%Y-%m-%dT%H:%M:%SZ"), sensor, metric, f"{value:.2f}", status))
    return out


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "corpus" / "logs" / "plant_sensors.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,sensor_id,metric,value,status"] + [",".join(r) for r in rows()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out)


if __name__ == "__main__":
    main(sys.argv)
