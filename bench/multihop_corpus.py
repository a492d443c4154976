"""A seeded, invented enterprise corpus with two-hop questions, for bench/multihop.py.

    .venv/bin/python bench/multihop_corpus.py OUT_DIR [--seed 0] [--size 4]

writes OUT_DIR/corpus/... (Markdown and Python files of a few hundred words each) and
OUT_DIR/questions.jsonl, one question a line:

    {"question", "answer", "evidence": [relative paths, first hop first], "hops": 1 | 2,
     "type", and for two-hop questions "bridge" (the entity that links the two files) and
     "subject" (the entity the question names)}

Five kinds of chain, `size` of each (default 4: 20 two-hop questions), e.g. a supply agreement
says "X's obligations are guaranteed by its parent company, Aurelia Holdings" and a company profile
says "Aurelia Holdings has its registered office in Velmouth"; the question asks for the city of
"the company that guarantees X's obligations". The bridging entity is in both files and never in
the question, and the second-hop file never names the question's entity, so the question's words
alone do not single out the second file: every distractor of its kind shares its template and
vocabulary. Each kind also has `size` distractor chains (same templates, other names) that no
two-hop question asks about; half of their second-hop files carry a single-hop control question
that names the entity directly (default 10 controls). Every answer string occurs in exactly one
file of the corpus, its evidence file.

All names are invented from syllables with the given seed; nothing is real data. Same seed and
size, same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("guarantor", "controller", "auditor", "site", "host")

_ONSET = ["Aur", "Bel", "Cal", "Dor", "El", "Fal", "Gar", "Hel", "Ist", "Jun", "Kes", "Lor", "Mer", "Nov",
          "Or", "Pral", "Quil", "Ros", "Sev", "Tal", "Ul", "Var", "Wes", "Xer", "Yor", "Zan", "Brev", "Cor",
          "Dun", "Eth", "Fen", "Grel", "Hav", "Kor", "Lun", "Mav", "Nor", "Olv", "Pel", "Rav", "Sil", "Tor",
          "Vel", "Wyn"]
_NUCLEUS = ["elia", "mont", "vane", "haven", "wick", "dara", "oria", "ith", "ara", "ston", "mere", "holt",
            "avex", "ion", "ora", "ello", "andor", "essa", "ind", "ulon", "arro", "enna", "ost", "ivar"]
_CITY_END = ["mouth", "stad", "burg", "ford", "polis", "ano", "era", "sund", "by", "haven", "ton", "ice"]
_FIRST = ["Mirela", "Tomas", "Ingrid", "Rafael", "Sunniva", "Oskar", "Leontine", "Dario", "Halvard", "Amaya",
          "Corin", "Ysolde", "Benedikt", "Noor", "Teodor", "Livia", "Anselm", "Rhoswen", "Ilario", "Maelle",
          "Kasimir", "Odile", "Jurian", "Petra"]
_SVC_ROOT = ["valve", "flow", "tide", "brine", "coil", "drum", "gauge", "surge", "quill", "ember", "frost",
             "pulse", "sluice", "weir", "spindle", "torque", "siphon", "baffle", "damper", "rotor"]
_SVC_ROLE = ["keeper", "warden", "pilot", "relay", "sentry", "broker", "loom", "beacon", "herald", "steward"]
_WORD = re.compile(r"[A-Za-z0-9]+")


class Names:
    """Unique invented names; no name's words overlap another name's distinctive root."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.roots: set[str] = set()
        self.used: set[str] = set()

    def root(self) -> str:
        while True:
            r = self.rng.choice(_ONSET) + self.rng.choice(_NUCLEUS)
            if r not in self.roots and len(r) >= 5:
                self.roots.add(r)
                return r

    def city(self) -> str:
        while True:
            c = self.rng.choice(_ONSET) + self.rng.choice(_CITY_END)
            if c not in self.roots:
                self.roots.add(c)
                return c

    def person(self) -> str:
        while True:
            first = self.rng.choice(_FIRST)
            if first not in self.used:
                break
        self.used.add(first)
        if len(self.used) >= len(_FIRST):
            self.used.clear()  # first names may repeat once all are used; surnames never do
        return f"{first} {self.root()}"

    def service(self) -> str:
        while True:
            s = self.rng.choice(_SVC_ROOT) + self.rng.choice(_SVC_ROLE)
            if s not in self.roots:
                self.roots.add(s)
                return s


@dataclass
class Chain:
    kind: str
    first: str  # relative path of the first-hop file
    second: str  # relative path of the second-hop file
    subject: str  # the entity the question names (in the first file only)
    bridge: str  # in both files, never in the question
    answer: str  # in the second file only
    question: str  # two-hop question
    control: str  # single-hop question naming the bridge
    files: dict[str, str] = field(default_factory=dict)


class _Deck:
    """Sentences of a pool drawn without repeats within one file, slots filled."""

    def __init__(self, rng: random.Random, pool: list[str], **slots: object) -> None:
        self.cards = rng.sample(pool, len(pool))
        self.slots = slots

    def take(self, k: int) -> str:
        if k > len(self.cards):
            raise ValueError("pool too small")
        out, self.cards = self.cards[:k], self.cards[k:]
        return " ".join(s.format(**self.slots) for s in out)


def _poss(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _year(rng: random.Random) -> int:
    return rng.randint(1961, 2012)


# --- kind 1: parent-company guarantee -> registered office --------------------------------------

_SUPPLY_SCOPE = [
    "The Supplier shall manufacture and deliver the {product} described in Schedule A in the quantities set out in each purchase order.",
    "Each purchase order issued by the Customer is binding once the Supplier has confirmed it in writing within five business days.",
    "The Supplier shall keep a safety stock equal to six weeks of the Customer's average consumption of {product}.",
    "Forecasts provided by the Customer are for planning purposes only and do not oblige the Customer to purchase.",
    "Changes to the specification of the {product} require a written change notice signed by both Parties.",
    "The Supplier shall not change the production site or a critical sub-supplier without the Customer's prior written consent.",
    "The Customer may inspect the Supplier's production of the {product} on reasonable notice during business hours.",
]
_SUPPLY_TERMS = [
    "Prices are fixed for the first contract year and thereafter adjusted once a year by the published producer price index.",
    "Invoices are payable within {days} days of receipt; late payments bear interest at four percentage points above the reference rate.",
    "Deliveries are made FCA the Supplier's plant, with a standard lead time of {weeks} weeks from order confirmation.",
    "Any delivery more than ten days late entitles the Customer to liquidated damages of half a percent of the order value per week.",
    "The Supplier warrants that the {product} conform to the specification for eighteen months from delivery.",
    "Title and risk pass to the Customer when the goods are handed to the first carrier.",
    "Defective goods are replaced or credited at the Customer's choice within twenty days of a written complaint.",
]
_GUARANTEE = [
    "{supplier_s} obligations under this Agreement are guaranteed by its parent company, {parent}.",
    "The due performance of {supplier_s} obligations under this Agreement is guaranteed by its parent company, {parent}.",
]
_GUARANTEE_MORE = [
    "The guarantee is irrevocable, covers payment and performance, and survives any change of control of the Supplier.",
    "The Customer may call the guarantee after giving the Supplier fourteen days' written notice of a default.",
    "The guarantee remains in force until all warranty periods under this Agreement have expired.",
    "The guarantor waives any right to require the Customer first to proceed against the Supplier.",
]
_SUPPLY_END = [
    "Neither Party is liable for indirect or consequential loss; each Party's aggregate liability is capped at the fees paid in the preceding twelve months.",
    "Either Party may terminate this Agreement for material breach not remedied within thirty days of written notice.",
    "This Agreement is governed by the law of the place of the Customer's principal office, and its courts have exclusive jurisdiction.",
    "Confidential information exchanged under this Agreement must be protected for five years after termination.",
    "Neither Party may assign this Agreement without the other Party's written consent, not to be unreasonably withheld.",
    "Force majeure suspends the affected obligations for as long as the event lasts, up to ninety days.",
]
_PROFILE_BODY = [
    "The group employs about {staff} people across its subsidiaries and publishes audited accounts every March.",
    "Its board of directors has seven members, three of them independent, and meets at least six times a year.",
    "The company's shares are held by a family foundation and two institutional investors.",
    "Its subsidiaries operate in industrial components, logistics services and commercial property.",
    "The group's treasury function provides guarantees and intra-group loans to its operating subsidiaries.",
    "The company reports a consolidated revenue of about {revenue} million euros for the last financial year.",
    "The group follows a long-term investment policy and rarely sells a subsidiary it has held for more than ten years.",
    "Its code of conduct applies to every subsidiary and is reviewed by the board every two years.",
    "The company's auditors are appointed each year by the general meeting, which is held in the spring.",
    "Acquisitions above a set value require the approval of the supervisory board.",
    "The group's sustainability report covers energy use, waste and workplace safety at every subsidiary.",
]


def guarantor(rng: random.Random, names: Names, i: int) -> Chain:
    supplier = f"{names.root()} {rng.choice(['Components', 'Systems', 'Logistics', 'Foods', 'Textiles', 'Fasteners'])}"
    customer = f"{names.root()} {rng.choice(['Robotics', 'Retail', 'Marine', 'Packaging', 'Automotive'])}"
    parent = f"{names.root()} {rng.choice(['Holdings', 'Group', 'Capital', 'Industries'])}"
    city, supplier_city, branch = names.city(), names.city(), names.city()
    product = rng.choice(["servo actuators", "controller boards", "pallet sensors", "hydraulic couplings",
                          "insulated cables", "packaging films", "bearing assemblies"])
    slots = {"supplier_s": _poss(supplier), "parent": parent, "product": product, "days": rng.choice([30, 45, 60]),
             "weeks": rng.choice([4, 6, 8, 10]), "staff": rng.randint(8, 90) * 100, "revenue": rng.randint(80, 900)}
    scope, terms, more, end = (_Deck(rng, p, **slots) for p in (_SUPPLY_SCOPE, _SUPPLY_TERMS, _GUARANTEE_MORE, _SUPPLY_END))
    year = rng.randint(2019, 2024)
    a = [
        f"# Supply Agreement between {supplier} and {customer}",
        "",
        f'This Supply Agreement (the "Agreement") is made on {rng.randint(1, 28)} {rng.choice(["March", "June", "October"])} {year} '
        f'between {supplier} Ltd., having its principal office in {supplier_city} (the "Supplier"), and {customer} Inc. '
        f'(the "Customer").',
        "",
        "## 1. Scope",
        "",
        scope.take(3),
        "",
        "## 2. Prices, Payment and Delivery",
        "",
        terms.take(4),
        "",
        "## 3. Parent Company Guarantee",
        "",
        rng.choice(_GUARANTEE).format(**slots) + " " + more.take(2),
        "",
        "## 4. Liability, Term and Law",
        "",
        f"This Agreement runs for {rng.choice(['three', 'four', 'five'])} years from its date and renews for one year at a time. "
        + end.take(3),
        "",
    ]
    office = rng.choice([
        f"{parent} has its registered office in {city}, where its executive board and group treasury are based.",
        f"The registered office of {parent} is in {city}; the executive board and group treasury work from there.",
    ])
    body = _Deck(rng, _PROFILE_BODY, **slots)
    b = [
        f"# {parent}: company profile",
        "",
        f"{parent} is a privately held holding company founded in {_year(rng)}. " + body.take(4),
        "",
        "## Registered office",
        "",
        office + f" A smaller operations office in {branch} handles payroll and facility management for the group.",
        "",
        "## Governance",
        "",
        body.take(4),
        "",
    ]
    first = f"contracts/supply_{_slug(supplier)}.md"
    second = f"companies/{_slug(parent)}.md"
    return Chain(
        "guarantor", first, second, supplier, parent, city,
        f"In which city is the registered office of the company that guarantees {_poss(supplier)} obligations?",
        f"In which city is the registered office of {parent}?",
        {first: "\n".join(a), second: "\n".join(b)},
    )


# --- kind 2: pump module -> controlling service -> restart delay ---------------------------------

_PUMP_BODY = [
    "The pump runs between {lo} and {hi} rpm; readings outside that band are logged as warnings.",
    "Speed readings are sampled every two seconds and averaged over a ten-second window before they are published.",
    "This module never writes setpoints itself: it reads the state that the controlling service publishes.",
    "A dry-run condition is reported when the inlet pressure stays below 0.4 bar for more than five readings.",
    "Maintenance windows are announced on the plant bus; during a window the readings are flagged, not alarmed.",
    "Bearing temperature is read from the drive and reported with every speed reading.",
    "The pump's motor is rated at {kw} kW and is fed from its own variable-frequency drive.",
    "Readings are kept in the plant historian for two years.",
]
_SERVICE_BODY = [
    "The service reads setpoints from the plant bus and writes them to the drives it owns.",
    "Health checks run every {hc} seconds over the local HTTP endpoint `/healthz`.",
    "Configuration lives in `config.toml`; changes are picked up on the next restart only.",
    "Logs go to the journal with the unit name as the identifier and are shipped to the central log store.",
    "Metrics are exported in the Prometheus text format on port {port}.",
    "The service holds a lease on each drive it controls and renews it every {lease} seconds.",
    "It runs as an unprivileged system user and only needs access to the plant bus socket.",
    "Two instances never run at once: a lock file on the controller host prevents it.",
    "A manual override from the operator panel always takes precedence over the service's setpoints.",
    "The service is written in Go and is built and signed by the plant release pipeline.",
    "Alarms raised by the service are forwarded to the control room with the drive's tag.",
]


def controller(rng: random.Random, names: Names, i: int, delays: list[int]) -> Chain:
    pump = f"pump-{rng.randint(1, 40)}{rng.choice('abcd')}"
    while pump in names.roots:
        pump = f"pump-{rng.randint(1, 40)}{rng.choice('abcd')}"
    names.roots.add(pump)
    svc = names.service()
    loop = rng.choice(["cooling loop", "brine loop", "feedwater line", "condensate return", "wash-down circuit"])
    delay = delays.pop()
    slots = {"lo": rng.choice([600, 800, 900]), "hi": rng.choice([2800, 3200, 3600]), "hc": rng.choice([5, 10, 15]),
             "port": rng.choice([9102, 9180, 9240, 9311]), "lease": rng.choice([20, 30, 60]), "kw": rng.choice([7.5, 11, 15, 22])}
    pbody, sbody = _Deck(rng, _PUMP_BODY, **slots), _Deck(rng, _SERVICE_BODY, **slots)
    fn = pump.replace("-", "_")
    a = [
        f'"""Readings and state of {pump} on the {loop}.',
        "",
        f"{pump} is controlled by the service `{svc}`; this module only reads its state and reports it.",
        pbody.take(5),
        "Operators who need to change the pump's setpoint must go through the controlling service.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"PUMP_ID = \"{pump}\"",
        f"RPM_RANGE = ({slots['lo']}, {slots['hi']})",
        "DRY_RUN_BAR = 0.4",
        "",
        "",
        f"def read_{fn}(bus) -> dict:",
        f'    """One reading of {pump}: speed, inlet pressure, bearing temperature and the controller\'s mode."""',
        "    raw = bus.read(PUMP_ID)",
        "    return {\"rpm\": raw.rpm, \"inlet_bar\": raw.inlet / 100.0, \"bearing_c\": raw.bearing, \"mode\": raw.mode}",
        "",
        "",
        "def in_band(reading: dict) -> bool:",
        '    """Whether the speed is inside the normal band."""',
        "    lo, hi = RPM_RANGE",
        "    return lo <= reading[\"rpm\"] <= hi",
        "",
        "",
        "def dry_run(readings: list[dict]) -> bool:",
        '    """Whether the last five readings all show an inlet pressure below the dry-run limit."""',
        "    last = readings[-5:]",
        "    return len(last) == 5 and all(r[\"inlet_bar\"] < DRY_RUN_BAR for r in last)",
        "",
    ]
    b = [
        f"# {svc}",
        "",
        f"`{svc}` is a supervisory control service of the plant automation stack. " + sbody.take(4),
        "",
        "## Restart policy",
        "",
        f"If `{svc}` exits or fails its health check, the supervisor restarts it after {delay} seconds. "
        "While it is down the drives it owns hold their last setpoint.",
        "",
        "## Operations",
        "",
        sbody.take(4),
        "Deployments happen through the plant release pipeline; a rollback redeploys the previous build.",
        "",
    ]
    first = f"plant/control/{fn}.py"
    second = f"services/{svc}/README.md"
    return Chain(
        "controller", first, second, pump, svc, str(delay),
        f"After how many seconds is the service that controls {pump} restarted?",
        f"After how many seconds is the service {svc} restarted?",
        {first: "\n".join(a), second: "\n".join(b)},
    )


# --- kind 3: annual report -> audit firm -> managing partner ------------------------------------

_REPORT_BODY = [
    "Revenue grew by {growth} percent, driven by new contracts and stable prices in the home market.",
    "Operating margin improved slightly as energy costs fell in the second half of the year.",
    "Net debt at year end was below one times operating profit.",
    "The board proposes a dividend in line with the policy of paying out a third of net profit.",
    "Capital expenditure focused on warehouse automation and a new order management system.",
    "Headcount rose to {staff} at year end, most of the increase in customer service.",
    "Working capital fell as inventory levels returned to normal after last year's supply problems.",
    "The company refinanced its revolving credit facility on similar terms for another five years.",
    "Customer satisfaction, measured by the annual survey, was the highest in five years.",
    "Two smaller competitors were acquired and integrated during the year.",
]
_AUDIT_MORE = [
    "The audit committee met the auditor four times during the year.",
    "Audit fees were in line with the previous year; non-audit services stayed below a tenth of the audit fee.",
    "The auditor reported no material weaknesses in internal control.",
    "The key audit matters were revenue recognition on long-term contracts and the valuation of goodwill.",
]
_FIRM_BODY = [
    "The firm audits mid-sized companies in trade, manufacturing and transport.",
    "It has about {staff} staff in four offices and is a member of an international network of independent firms.",
    "Engagement teams rotate the lead partner at least every seven years.",
    "Quality reviews of completed audits are carried out by a partner outside the engagement team.",
    "Fees are agreed per engagement and reported to the client's audit committee each year.",
    "The firm publishes a transparency report every year, as the audit regulator requires.",
    "Trainees follow a three-year programme that leads to the professional qualification.",
    "The firm does not provide consulting services to the companies whose accounts it audits.",
    "Its partners meet every quarter to review risk, independence and the client portfolio.",
    "The firm's audit methodology is shared across the network and updated every year.",
]


def auditor(rng: random.Random, names: Names, i: int) -> Chain:
    company = f"{names.root()} {rng.choice(['Retail', 'Shipping', 'Brewing', 'Media', 'Pharma', 'Telecom'])}"
    firm = f"{names.root()} {rng.choice(['Audit Partners', 'Assurance', 'Accountants'])}"
    partner, tax_head = names.person(), names.person()
    year = rng.randint(2019, 2024)
    slots = {"growth": rng.randint(2, 14), "staff": rng.randint(3, 60) * 10}
    report, more, fbody = _Deck(rng, _REPORT_BODY, **slots), _Deck(rng, _AUDIT_MORE), _Deck(rng, _FIRM_BODY, **slots)
    a = [
        f"# {company}: annual report {year}, summary",
        "",
        "## Results",
        "",
        report.take(5),
        "",
        "## Audit",
        "",
        f"The consolidated financial statements of {company} for {year} were audited by {firm}, "
        "which issued an unqualified opinion. " + more.take(3),
        "",
        "## Outlook",
        "",
        report.take(3),
        "Management expects moderate growth and will report on progress at the half year.",
        "",
    ]
    b = [
        f"# {firm}",
        "",
        f"{firm} is an independent audit and assurance firm founded in {_year(rng)}. " + fbody.take(4),
        "",
        "## People",
        "",
        f"The managing partner of {firm} is {partner}. The tax practice is led by {tax_head}.",
        "",
        "## Practice",
        "",
        fbody.take(5),
        "",
    ]
    first = f"finance/annual_report_{_slug(company)}_{year}.md"
    second = f"vendors/audit/{_slug(firm)}.md"
    return Chain(
        "auditor", first, second, company, firm, partner,
        f"Who is the managing partner of the audit firm that audited {_poss(company)} financial statements?",
        f"Who is the managing partner of {firm}?",
        {first: "\n".join(a), second: "\n".join(b)},
    )


# --- kind 4: sensor datasheet -> site -> on-call engineer ---------------------------------------

_SENSOR_BODY = [
    "The sensor reports once per second over the site's fieldbus and buffers an hour of readings locally.",
    "Calibration is checked every {months} months against a reference instrument.",
    "A reading above the alarm threshold for more than ten seconds raises a site alarm.",
    "The sensor's housing is rated IP67 and its operating range is -20 to 70 degrees Celsius.",
    "Firmware updates are rolled out in the quarterly maintenance window.",
    "The sensor is powered over the fieldbus and needs no separate supply.",
    "Its mounting bracket is bolted to the machine frame with vibration dampers.",
    "The alarm threshold is set in the site's control system, not on the sensor itself.",
    "A replacement sensor of the same type is kept in the site's spare parts store.",
    "Readings are kept in the plant historian for two years and summarised every night.",
    "Faults are logged in the maintenance system with the sensor tag as reference.",
]
_SITE_BODY = [
    "The site runs three shifts on weekdays and two at weekends.",
    "Visitors report to the gatehouse and need a safety induction before entering the production area.",
    "Alarms from the site's sensors are routed to the control room and, outside office hours, to the on-call engineer.",
    "The site keeps spare parts for critical equipment in the central store next to the workshop.",
    "Emergency drills are held twice a year together with the local fire service.",
    "Hard hats, safety shoes and high-visibility vests are required everywhere outside the offices.",
    "Contractors must register their work with the site office before they start.",
    "The canteen is open from six in the morning until ten at night.",
    "Waste is separated into six streams and collected twice a week.",
    "Trucks use the north gate; cars park on the visitor car park by the main entrance.",
    "Hot work needs a permit from the shift supervisor.",
]


def site(rng: random.Random, names: Names, i: int) -> Chain:
    sensor = f"TS-{rng.randint(1000, 9999)}"
    while sensor in names.roots:
        sensor = f"TS-{rng.randint(1000, 9999)}"
    names.roots.add(sensor)
    place = f"{names.root()} {rng.choice(['Terminal', 'Works', 'Depot', 'Plant'])}"
    engineer, manager = names.person(), names.person()
    measure = rng.choice(["vibration", "temperature", "pressure", "humidity", "flow"])
    sbody = _Deck(rng, _SENSOR_BODY, months=rng.choice([6, 12, 18]))
    site_body = _Deck(rng, _SITE_BODY)
    a = [
        f"# Sensor {sensor}: installation record",
        "",
        f"Sensor {sensor} is a {measure} sensor. It is installed at the {place} facility, "
        f"on line {rng.randint(1, 6)}, and was commissioned in {rng.randint(2018, 2024)}.",
        "",
        "## Operation",
        "",
        sbody.take(5),
        "",
        "## Maintenance",
        "",
        sbody.take(4),
        "",
    ]
    b = [
        f"# {place}: site handbook",
        "",
        f"{place} is one of the group's production and storage facilities. " + site_body.take(4),
        "",
        "## Contacts",
        "",
        f"The site manager is {manager}. The on-call engineer for {place} is {engineer}, "
        "reachable through the control room at any hour.",
        "",
        "## Rules",
        "",
        site_body.take(5),
        "",
    ]
    first = f"sensors/{sensor.lower()}.md"
    second = f"sites/{_slug(place)}.md"
    return Chain(
        "site", first, second, sensor, place, engineer,
        f"Who is the on-call engineer at the site where sensor {sensor} is installed?",
        f"Who is the on-call engineer for {place}?",
        {first: "\n".join(a), second: "\n".join(b)},
    )


# --- kind 5: product -> hosting subprocessor -> data centre city --------------------------------

_PRIVACY_BODY = [
    "Personal data is processed only to provide the service and for no other purpose.",
    "Subprocessors are bound by written agreements with data protection terms at least as strict as ours.",
    "Customers are informed thirty days before a new subprocessor is engaged and may object.",
    "Backups are encrypted and kept for thirty-five days.",
    "Access to production systems requires two-factor authentication and is logged.",
    "Data is encrypted in transit and at rest with keys that are rotated every year.",
    "Support staff see customer data only when a customer opens a ticket and grants access.",
    "Deleted accounts are purged from all systems within ninety days.",
    "We review each subprocessor's security certificates once a year.",
    "Security incidents are reported to affected customers within seventy-two hours.",
]
_HOST_BODY = [
    "The provider offers virtual machines, managed databases and object storage.",
    "All facilities are certified to ISO 27001 and audited once a year.",
    "Power is supplied from two independent grid connections with diesel backup for 48 hours.",
    "Customers can choose between shared and dedicated hardware.",
    "Support is available around the clock by phone and ticket.",
    "Network capacity is provided by three carriers over separate fibre routes.",
    "Physical access to the halls requires a badge and a fingerprint and is logged.",
    "Customer data never leaves the region the customer chose when signing up.",
    "Maintenance that could interrupt service is announced two weeks ahead.",
    "The provider publishes its uptime for the previous month on its status page.",
]


def host(rng: random.Random, names: Names, i: int) -> Chain:
    product = f"{names.root()}{rng.choice(['Desk', 'Books', 'Track', 'Shift', 'Ledger'])}"
    provider = f"{names.root()} {rng.choice(['Cloud', 'Hosting', 'Datacenters'])}"
    mailer = f"{names.root()} {rng.choice(['Mail', 'Messaging'])}"
    city, backup = names.city(), names.city()
    pbody, hbody = _Deck(rng, _PRIVACY_BODY), _Deck(rng, _HOST_BODY)
    a = [
        f"# {product}: subprocessors and data protection",
        "",
        f"{product} is our scheduling and billing application for small businesses. This page lists the "
        "subprocessors that handle its customers' personal data and the safeguards around them.",
        "",
        "## Subprocessors",
        "",
        f"Customer data of {product} is hosted by the subprocessor {provider}. "
        f"Transactional e-mail is sent through {mailer}, which receives only e-mail addresses and message content.",
        "",
        "## Safeguards",
        "",
        pbody.take(5),
        "",
        "## Changes",
        "",
        pbody.take(3),
        "",
    ]
    b = [
        f"# {provider}: provider overview",
        "",
        f"{provider} is an infrastructure provider founded in {_year(rng)}. " + hbody.take(4),
        "",
        "## Data centres",
        "",
        f"{provider} runs its primary data centre in {city}. A secondary site in {backup} holds replicas "
        "and takes over within four hours if the primary site fails.",
        "",
        "## Service",
        "",
        hbody.take(4),
        "",
    ]
    first = f"privacy/{_slug(product)}_subprocessors.md"
    second = f"vendors/hosting/{_slug(provider)}.md"
    return Chain(
        "host", first, second, product, provider, city,
        f"In which city is the primary data centre of the subprocessor that hosts {_poss(product)} customer data?",
        f"In which city is the primary data centre of {provider}?",
        {first: "\n".join(a), second: "\n".join(b)},
    )


def _slug(name: str) -> str:
    return "_".join(w.lower() for w in _WORD.findall(name))


def build(seed: int = 0, size: int = 4) -> tuple[dict[str, str], list[dict]]:
    """(relative path -> text, questions) for `size` asked and `size` distractor chains per kind."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    rng = random.Random(seed)
    names = Names(random.Random(seed + 1))
    delays = [d for d in range(31, 400) if all(d % p for p in (2, 3, 5))]  # unusual numbers: 31, 37, 41, ...
    random.Random(seed + 2).shuffle(delays)
    makers = {"guarantor": guarantor, "controller": lambda r, n, i: controller(r, n, i, delays),
              "auditor": auditor, "site": site, "host": host}
    files: dict[str, str] = {}
    asked: list[dict] = []
    controls: list[dict] = []
    for kind in KINDS:
        for i in range(2 * size):
            c = makers[kind](rng, names, i)
            for path, text in c.files.items():
                if path in files:
                    raise RuntimeError(f"duplicate path {path}")
                files[path] = text
            if i < size:
                asked.append({"question": c.question, "answer": c.answer, "evidence": [c.first, c.second],
                              "hops": 2, "type": kind, "bridge": c.bridge, "subject": c.subject})
            elif (i - size) < (size + 1) // 2:
                controls.append({"question": c.control, "answer": c.answer, "evidence": [c.second],
                                 "hops": 1, "type": kind})
    _check_answers_unique(files, asked + controls)
    return dict(sorted(files.items())), asked + controls


def _check_answers_unique(files: dict[str, str], questions: list[dict]) -> None:
    for q in questions:
        pat = re.compile(rf"\b{re.escape(q['answer'])}\b")
        where = [p for p, t in files.items() if pat.search(t)]
        if where != [q["evidence"][-1]]:
            raise RuntimeError(f"answer {q['answer']!r} occurs in {where}, not only in {q['evidence'][-1]}")


def write(out: Path, seed: int = 0, size: int = 4) -> tuple[Path, Path]:
    """Write OUT/corpus/... and OUT/questions.jsonl; returns (corpus dir, questions file)."""
    files, questions = build(seed, size)
    corpus = Path(out) / "corpus"
    for rel, text in files.items():
        p = corpus / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8", newline="\n")
    qpath = Path(out) / "questions.jsonl"
    qpath.write_text("".join(json.dumps(q, sort_keys=True) + "\n" for q in questions), encoding="utf-8", newline="\n")
    return corpus, qpath


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=4, help="asked two-hop chains per kind (5 kinds)")
    a = ap.parse_args()
    corpus, qpath = write(a.out, a.seed, a.size)
    files, questions = build(a.seed, a.size)
    words = [len(t.split()) for t in files.values()]
    print(f"{len(files)} files ({min(words)}-{max(words)} words, {sum(words)} in all) in {corpus}; "
          f"{len(questions)} questions in {qpath}")


if __name__ == "__main__":
    main()
