// Operator dashboard: live pump pressures and alarm banner.
const REFRESH_MS = 2000;
const PRESSURE_WARN_BAR = 8.0;

/**
 * Colour for a pressure reading: green, amber near the limit, red above it.
 */
function pressureColour(bar, limitBar) {
  if (bar > limitBar) return "#d62828";
  if (bar > PRESSURE_WARN_BAR) return "#f77f00";
  return "#2a9d8f";
}

const formatReading = (r) => `${r.sensor_id}: ${r.value.toFixed(2)} ${r.unit ?? "bar"}`;

async function refreshPumps(apiBase, limitBar = 8.75) {
  const res = await fetch(`${apiBase}/pumps/latest`);
  if (!res.ok) {
    showAlarm(`dashboard API returned ${res.status}`);
    return [];
  }
  const readings = await res.json();
  for (const r of readings) {
    const cell = document.getElementById(`pump-${r.sensor_id}`);
    if (!cell) continue;
    cell.textContent = formatReading(r);
    cell.style.color = pressureColour(r.value, limitBar);
    if (r.status === "ALARM") showAlarm(`${r.sensor_id} ALARM at ${r.timestamp}`);
  }
  return readings;
}

function showAlarm(message) {
  const banner = document.getElementById("alarm-banner");
  banner.textContent = message;
  banner.hidden = false;
}

export class PumpTable {
  constructor(root) {
    this.root = root;
    this.timer = null;
  }

  start(apiBase) {
    this.timer = setInterval(() => refreshPumps(apiBase), REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
  }
}
