"""Definitions in TypeScript, Go, Rust, Java, C, C++, C# and Bash; --kind overrides."""

import json

import pytest

from msa_agent.ingest import SourceError, detect_kind, parse_file

TS = """import { Client } from "./client";

export type Reading = { sensor: string; value: number };

/** Where a gauge points. */
export enum Level {
  Low,
  High,
}

/**
 * Something that can be polled.
 */
export interface Pollable {
  poll(): Promise<Reading>;
}

export namespace Units {
  export function toBar(psi: number): number {
    return psi / 14.5038;
  }
}

// Polls one sensor.
export class Poller implements Pollable {
  private last?: Reading;

  constructor(private readonly client: Client) {}

  /** One reading, cached. */
  async poll(): Promise<Reading> {
    this.last = await this.client.get("/r");
    return this.last;
  }

  onTick = (n: number) => {
    console.log(n);
  };
}

export const mean = (xs: number[]): number =>
  xs.reduce((a, b) => a + b, 0) / xs.length;

const POLL_MS = 500;
"""

TSX = """import React from "react";

type Props = { label: string };

/** A labelled badge. */
export function Badge({ label }: Props) {
  return <span className="badge">{label}</span>;
}

export default Badge;
"""

GO = """// Package store keeps readings.
package store

import (
	"errors"
	"sync"
)

// ErrMissing is returned for unknown sensors.
var ErrMissing = errors.New("missing")

// Store holds the last reading per sensor.
type Store struct {
	mu   sync.Mutex
	last map[string]float64
}

type (
	// Sensor names a sensor.
	Sensor string
	Unit   string
)

// New returns an empty store.
func New() *Store {
	return &Store{last: map[string]float64{}}
}

// Get returns the last reading.
func (s *Store) Get(name Sensor) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.last[string(name)]
	if !ok {
		return 0, ErrMissing
	}
	return v, nil
}

func (u Unit) String() string { return string(u) }
"""

RUST = """//! Pump control.
use std::fmt;

/// A pump with a rated flow.
#[derive(Debug, Clone)]
pub struct Pump {
    pub rated: f64,
}

/// What can be switched.
pub trait Switch {
    fn on(&mut self);
    fn off(&mut self) {}
}

impl Pump {
    /// A new pump.
    pub fn new(rated: f64) -> Self {
        Pump { rated }
    }

    pub fn flow(&self, pct: f64) -> f64 {
        self.rated * pct / 100.0
    }
}

impl fmt::Display for Pump {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "pump {}", self.rated)
    }
}

pub enum State {
    Running,
    Stopped,
}

pub mod units {
    pub fn lpm(x: f64) -> f64 {
        x * 60.0
    }
}

const MAX: f64 = 100.0;
"""

JAVA = """package com.acme.plant;

import java.util.List;

/**
 * A valve with an opening in percent.
 */
@Entity
public class Valve extends Device {
    private double opening;

    /** A closed valve. */
    public Valve() {
        this.opening = 0;
    }

    @Override
    public String describe() {
        return "valve " + opening;
    }

    public enum Mode {
        AUTO, MANUAL;

        boolean manual() { return this == MANUAL; }
    }
}

interface Device {
    String describe();
}
"""

C = """#ifndef PUMP_H
#define PUMP_H
#include <stddef.h>

/* A pump. */
struct pump {
    double rated;
};

typedef enum { OFF, ON } state_t;

/**
 * Flow at an opening, in l/min.
 */
static inline double pump_flow(const struct pump *p, double pct)
{
    return p->rated * pct / 100.0;
}

int pump_count(void);
#endif
"""

CPP = """#include <string>

namespace plant {

/// A gauge on a panel.
class Gauge {
public:
    explicit Gauge(std::string name) : name_(std::move(name)) {}

    /// Current value.
    double value() const { return value_; }

private:
    std::string name_;
    double value_ = 0;
};

template <typename T>
T clamp(T v, T lo, T hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

}  // namespace plant

// Out of line.
void plant::reset(Gauge& g) {
    (void)g;
}
"""

CS = """using System;

namespace Acme.Billing;

/// <summary>An invoice.</summary>
[Serializable]
public sealed class Invoice
{
    public decimal Total { get; private set; }

    /// <summary>Adds a line.</summary>
    public void Add(decimal amount)
    {
        Total += amount;
    }

    public override string ToString() => $"{Total}";
}

public interface IPayable
{
    void Pay();
}

public enum Status { Open, Paid }
"""

BASH = """#!/usr/bin/env bash
# Deploys the plant dashboard.
set -euo pipefail

# Prints a message with a timestamp.
log() {
  echo "$(date -u +%FT%TZ) $*"
}

function deploy {
  log "deploying $1"
  rsync -a dist/ "$1:/srv/dash/"
}

deploy "${1:-prod}"
"""

# file name, source, {symbol: (first line, last line)}
SNIPPETS = {
    "typescript": (
        "poller.ts",
        TS,
        {
            "<module>": (1, 44),
            "Reading": (3, 3),
            "Level": (5, 9),
            "Pollable": (11, 16),
            "Units.toBar": (19, 21),
            "Poller": (24, 39),
            "mean": (41, 42),
        },
    ),
    "tsx": ("badge.tsx", TSX, {"<module>": (1, 10), "Props": (3, 3), "Badge": (5, 8)}),
    "go": (
        "store.go",
        GO,
        {
            "<module>": (1, 22),
            "store.Store": (12, 16),
            "store.Sensor": (19, 20),
            "store.Unit": (21, 21),
            "store.New": (24, 27),
            "Store.Get": (29, 38),
            "Unit.String": (40, 40),
        },
    ),
    "rust": (
        "pump.rs",
        RUST,
        {
            "<module>": (1, 44),
            "Pump": (4, 8),
            "Switch": (10, 14),
            "impl Pump": (16, 25),
            "impl fmt::Display for Pump": (27, 31),
            "State": (33, 36),
            "units.lpm": (39, 41),
        },
    ),
    "java": ("Valve.java", JAVA, {"<module>": (1, 3), "Valve": (5, 27), "Device": (29, 31)}),
    "c": ("pump.h", C, {"<module>": (1, 21), "pump": (5, 8), "state_t": (10, 10), "pump_flow": (12, 18)}),
    "cpp": (
        "gauge.cpp",
        CPP,
        {"<module>": (1, 23), "plant.Gauge": (5, 16), "plant.clamp": (18, 21), "plant.reset": (25, 28)},
    ),
    "csharp": (
        "Invoice.cs",
        CS,
        {
            "<module>": (1, 3),
            "Acme.Billing.Invoice": (5, 18),
            "Acme.Billing.IPayable": (20, 23),
            "Acme.Billing.Status": (25, 25),
        },
    ),
    "bash": ("deploy.sh", BASH, {"<module>": (1, 15), "log": (5, 8), "deploy": (10, 13)}),
}


def _spans(docs):
    return {d.anchor_data.get("symbol"): (d.anchor_data["line_start"], d.anchor_data["line_end"]) for d in docs}


def _lines(src, a, b):
    return "\n".join(src.split("\n")[a - 1 : b])


@pytest.mark.parametrize("lang", sorted(SNIPPETS))
def test_definitions_and_exact_line_spans(tmp_path, lang):
    name, src, expected = SNIPPETS[lang]
    p = tmp_path / name
    p.write_text(src)
    assert detect_kind(p) == "code"
    warnings: list[str] = []
    docs = parse_file(p, tmp_path, warnings=warnings)
    assert warnings == []  # every snippet parses cleanly with its grammar
    assert _spans(docs) == expected
    for d in docs:
        assert d.kind == "code" and d.path == name and "fallback" not in d.anchor_data
        json.dumps(d.anchor_data)
        if d.anchor_data["symbol"] == "<module>":
            continue
        a, b = d.anchor_data["line_start"], d.anchor_data["line_end"]
        assert d.text == _lines(src, a, b) and d.title == d.anchor_data["symbol"]
        assert d.anchor == (f"lines {a}-{b}" if b > a else f"line {a}")
    # Every non-blank line is in exactly one document.
    covered = []
    for d in docs:
        ranges = d.anchor_data.get("line_ranges") or [[d.anchor_data["line_start"], d.anchor_data["line_end"]]]
        covered += [n for a, b in ranges for n in range(a, b + 1)]
    assert len(covered) == len(set(covered))
    assert {i for i, ln in enumerate(src.split("\n"), 1) if ln.strip()} <= set(covered)


def _doc(docs, symbol):
    [d] = [d for d in docs if d.anchor_data.get("symbol") == symbol]
    return d


def _parse(tmp_path, lang, max_chars=2400):
    name, src, _ = SNIPPETS[lang]
    (tmp_path / name).write_text(src)
    return parse_file(tmp_path / name, tmp_path, max_chars=max_chars)


def test_doc_comments_and_attributes_travel_with_their_definition(tmp_path):
    ts = _parse(tmp_path, "typescript")
    assert _doc(ts, "Pollable").text.startswith("/**\n * Something that can be polled.")
    assert _doc(ts, "Poller").text.startswith("// Polls one sensor.\nexport class Poller")
    go = _parse(tmp_path, "go")
    assert _doc(go, "Store.Get").text.startswith("// Get returns the last reading.\nfunc (s *Store) Get(")
    assert _doc(go, "store.Sensor").text == "\t// Sensor names a sensor.\n\tSensor string"
    assert "// Package store keeps readings." in _doc(go, "<module>").text  # a package doc stays with the file
    rs = _parse(tmp_path, "rust")
    assert _doc(rs, "Pump").text.startswith("/// A pump with a rated flow.\n#[derive(Debug, Clone)]\npub struct Pump")
    assert "//! Pump control." in _doc(rs, "<module>").text  # an inner doc is the file's
    java = _parse(tmp_path, "java")
    assert _doc(java, "Valve").text.startswith("/**\n * A valve with an opening in percent.\n */\n@Entity\npublic class")
    c = _parse(tmp_path, "c")
    assert _doc(c, "pump_flow").text.startswith("/**\n * Flow at an opening, in l/min.\n */\nstatic inline double")
    cs = _parse(tmp_path, "csharp")
    assert _doc(cs, "Acme.Billing.Invoice").text.startswith("/// <summary>An invoice.</summary>\n[Serializable]\n")
    sh = _parse(tmp_path, "bash")
    assert _doc(sh, "log").text.startswith("# Prints a message with a timestamp.\nlog() {")
    assert _doc(sh, "<module>").text.startswith("#!/usr/bin/env bash\n# Deploys the plant dashboard.\nset -euo")


def test_big_classes_split_into_members(tmp_path):
    # (language, max_chars, {symbol: (first, last)} of the members and the class's own lines)
    cases = {
        "typescript": (
            300,
            {
                "Poller": (24, 39),  # header, field and closing brace: lines 24-26, 39
                "Poller.constructor": (28, 28),
                "Poller.poll": (30, 34),
                "Poller.onTick": (36, 38),
            },
        ),
        "rust": (150, {"impl Pump": (16, 25), "Pump.new": (17, 20), "Pump.flow": (22, 24)}),
        "java": (  # the nested enum is split too
            90,
            {
                "Valve": (5, 27),
                "Valve.Valve": (12, 15),
                "Valve.describe": (17, 20),
                "Valve.Mode": (22, 26),
                "Valve.Mode.manual": (25, 25),
            },
        ),
        "cpp": (150, {"plant.Gauge": (5, 16), "plant.Gauge.Gauge": (8, 8), "plant.Gauge.value": (10, 11)}),
        "csharp": (  # a one-line auto-property stays with the class; a method does not
            150,
            {
                "Acme.Billing.Invoice": (5, 18),
                "Acme.Billing.Invoice.Add": (11, 15),
                "Acme.Billing.Invoice.ToString": (17, 17),
            },
        ),
    }
    for lang, (max_chars, expected) in cases.items():
        name, src, _ = SNIPPETS[lang]
        docs = _parse(tmp_path, lang, max_chars)
        assert all(0 < len(d.text) <= max_chars for d in docs), lang
        got = {}
        for d in docs:
            s = d.anchor_data.get("symbol")
            a, b = d.anchor_data["line_start"], d.anchor_data["line_end"]
            got[s] = (min(a, got.get(s, (a, b))[0]), max(b, got.get(s, (a, b))[1]))
        for symbol, span in expected.items():
            assert got.get(symbol) == span, (lang, symbol, got)
        for d in docs:  # members are cited by their own lines
            if d.anchor_data["symbol"] in expected and "line_ranges" not in d.anchor_data:
                assert d.text == _lines(src, d.anchor_data["line_start"], d.anchor_data["line_end"])
    java = _parse(tmp_path, "java", 90)
    own = "\n".join(d.text for d in java if d.anchor_data["symbol"] == "Valve")
    assert "private double opening;" in own and "describe()" not in own


def test_header_named_dot_h_with_cpp_inside_is_parsed_as_cpp(tmp_path):
    src = "#pragma once\nnamespace io {\n/// A port.\nclass Port {\n public:\n  int read();\n};\n}  // namespace io\n"
    (tmp_path / "port.h").write_text(src)
    warnings: list[str] = []
    docs = parse_file(tmp_path / "port.h", tmp_path, warnings=warnings)
    assert warnings == [] and _spans(docs) == {"<module>": (1, 8), "io.Port": (3, 7)}


def test_definitions_inside_preprocessor_blocks_wrappers_and_templates(tmp_path):
    cases = {
        "Legacy.cs": (
            "#if !NET20\nusing System;\n\nnamespace Acme\n{\n    public class Legacy\n    {\n#if DEBUG\n"
            "        public void Trace() { }\n#endif\n    }\n}\n#endif\n",
            {"<module>": (1, 13), "Acme.Legacy": (6, 11)},
        ),
        # install scripts wrap everything in { ... } so a partial download does not run
        "install.sh": (
            "#!/bin/sh\n{ # whole script\n\nnvm_has() {\n  type \"$1\" > /dev/null 2>&1\n}\n\nnvm_has git\n}\n",
            {"<module>": (1, 9), "nvm_has": (4, 6)},
        ),
        "box.hpp": (
            "template <typename T, typename U>\nstruct Box<T, std::vector<U>> {\n  T get() const;\n};\n\n"
            "template <typename T>\nT Box<T, int>::get() const { return T(); }\n",
            {"Box": (1, 4), "Box.get": (6, 7)},
        ),
    }
    for name, (src, expected) in cases.items():
        (tmp_path / name).write_text(src)
        assert _spans(parse_file(tmp_path / name, tmp_path)) == expected, name


def test_shebang_scripts_without_extension_are_parsed(tmp_path):
    (tmp_path / "backup").write_text("#!/bin/sh\n# Back up.\nrun() {\n  tar czf b.tgz data\n}\nrun\n")
    (tmp_path / "tool").write_text("#!/usr/bin/env python3\nimport sys\n\n\ndef main():\n    return 0\n")
    assert _spans(parse_file(tmp_path / "backup", tmp_path)) == {"<module>": (1, 6), "run": (2, 5)}
    assert _spans(parse_file(tmp_path / "tool", tmp_path)) == {"<module>": (1, 2), "main": (5, 6)}


def test_unknown_languages_still_fall_back_to_marked_line_windows(tmp_path):
    src = "package main\n\n" + "".join(f"fun f{i}(): Int {{\n    return {i}\n}}\n\n" for i in range(40))
    p = tmp_path / "Main.kt"
    p.write_text(src)
    docs = parse_file(p, tmp_path)
    assert len(docs) > 1
    lines = src.split("\n")
    for d in docs:
        assert d.anchor_data["fallback"] == "line-windows" and "symbol" not in d.anchor_data
        a, b = d.anchor_data["line_start"], d.anchor_data["line_end"]
        assert b - a + 1 <= 60 and d.text == "\n".join(lines[a - 1 : b])


def test_syntax_errors_in_a_new_language_warn_and_keep_definitions(tmp_path):
    p = tmp_path / "broken.go"
    p.write_text("package x\n\nfunc Ok() int {\n\treturn 1\n}\n\nfunc Broken( {\n")
    warnings: list[str] = []
    docs = parse_file(p, tmp_path, warnings=warnings)
    assert "x.Ok" in _spans(docs) and any("broken.go: syntax errors" in w for w in warnings)


# --- kind override ---------------------------------------------------------------------------


def test_kind_override_reads_a_txt_as_a_log(tmp_path):
    p = tmp_path / "pump.txt"
    p.write_text("timestamp,sensor,value\n2024-03-01T10:00:00Z,P1,3.5\n2024-03-01T10:05:00Z,P1,3.9\n")
    assert detect_kind(p) == "text" and parse_file(p, tmp_path)[0].kind == "text"
    [d] = parse_file(p, tmp_path, kind="log")
    assert d.kind == "log" and d.anchor_data["sensor"] == "P1" and d.anchor_data["rows"] == 2
    j = tmp_path / "events.txt"
    j.write_text('{"ts": "2024-03-01T10:00:00Z", "device": "d1", "msg": "up"}\n')
    [d] = parse_file(j, tmp_path, kind="log")
    assert d.kind == "log" and d.anchor_data["sensor"] == "d1"


def test_kind_override_code_text_and_contract(tmp_path):
    p = tmp_path / "helpers.conf"
    p.write_text("x = 1\n")
    [d] = parse_file(p, tmp_path, kind="code")
    assert d.kind == "code" and d.anchor_data["fallback"] == "line-windows"
    py = tmp_path / "notes.py"
    py.write_text("def f():\n    return 1\n")
    assert {d.kind for d in parse_file(py, tmp_path, kind="text")} == {"text"}
    c = tmp_path / "terms.yaml"
    c.write_text("1. Term\nThis Agreement runs for one year.\n\n2. Termination\nEither Party may end it.\n")
    docs = parse_file(c, tmp_path, kind="contract")
    assert {d.kind for d in docs} == {"contract"}
    odd = tmp_path / "data.weird"  # a type detect_kind does not know
    odd.write_text("hello\n")
    assert parse_file(odd, tmp_path, kind="text")[0].text == "hello"


def test_kind_override_that_cannot_read_the_file_raises(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("Just some notes.\nNo clock here.\n")
    with pytest.raises(SourceError, match="notes.txt: no timestamp column"):
        parse_file(p, tmp_path, kind="log")
    b = tmp_path / "blob.py"
    b.write_bytes(b"\x7fELF\x00\x01\x02binary")
    with pytest.raises(SourceError, match="blob.py: not text"):
        parse_file(b, tmp_path, kind="code")
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    with pytest.raises(SourceError, match="a.pdf: a PDF file cannot be read as log"):
        parse_file(pdf, tmp_path, kind="log")
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_file(p, tmp_path, kind="spreadsheet")
