//! One results table per mode, printed as text and optionally kept as JSON
//! or written into the markdown report, with the targets its figures meet
//! or miss. Whether a target is met is computed from the figure here, never
//! written by hand.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

/// A target and whether this run met it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// What is asked, with its bound.
    pub what: String,
    /// The run's figures behind the verdict.
    pub measured: String,
    pub met: bool,
}

impl Target {
    /// Met when `value >= bound`.
    pub(crate) fn at_least(
        what: impl Into<String>,
        value: f64,
        bound: f64,
        measured: impl Into<String>,
    ) -> Target {
        Target::bounded(what.into(), ">=", value >= bound, bound, measured.into())
    }

    /// Met when `value <= bound`.
    pub(crate) fn at_most(
        what: impl Into<String>,
        value: f64,
        bound: f64,
        measured: impl Into<String>,
    ) -> Target {
        Target::bounded(what.into(), "<=", value <= bound, bound, measured.into())
    }

    fn bounded(what: String, relation: &str, met: bool, bound: f64, measured: String) -> Target {
        Target {
            what: format!("{what} ({relation} {bound})"),
            measured,
            met,
        }
    }

    /// Met when `holds`.
    pub(crate) fn holds(
        what: impl Into<String>,
        holds: bool,
        measured: impl Into<String>,
    ) -> Target {
        Target {
            what: what.into(),
            measured: measured.into(),
            met: holds,
        }
    }

    pub(crate) fn verdict(&self) -> &'static str {
        if self.met { "met" } else { "**unmet**" }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub title: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
    pub notes: Vec<String>,
    pub targets: Vec<Target>,
}

impl Table {
    pub(crate) fn new(title: impl Into<String>, columns: &[&'static str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, values: Vec<Value>) {
        self.rows.push(values);
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(crate) fn target(&mut self, target: Target) {
        self.targets.push(target);
    }

    fn cell(value: &Value) -> String {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.abs() >= 100.0 => format!("{f:.0}"),
                Some(f) if n.is_f64() => format!("{f:.3}"),
                _ => n.to_string(),
            },
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// The table as markdown under a `###` heading: the rows, the notes,
    /// then this table's targets.
    pub(crate) fn markdown(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Self::cell).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, String::len))
                    .max()
                    .unwrap_or(0)
                    .max(c.len())
            })
            .collect();
        let mut out = format!("### {}\n\n", self.title);
        let line = |out: &mut String, values: Vec<String>| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect();
            let _ = writeln!(out, "| {} |", padded.join(" | "));
        };
        line(
            &mut out,
            self.columns.iter().map(|c| c.to_string()).collect(),
        );
        let rule: Vec<String> = widths
            .iter()
            .map(|w| format!("{}:", "-".repeat(w + 1)))
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in cells {
            line(&mut out, row);
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        if !self.targets.is_empty() {
            out.push('\n');
            for target in &self.targets {
                let _ = writeln!(
                    out,
                    "- {}: {} ({})",
                    target.verdict(),
                    target.what,
                    target.measured
                );
            }
        }
        out
    }

    pub(crate) fn print(&self) {
        println!("\n{}", self.markdown());
    }

    pub(crate) fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let map: Map<String, Value> = self
                    .columns
                    .iter()
                    .map(|c| c.to_string())
                    .zip(r.iter().cloned())
                    .collect();
                Value::Object(map)
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({ "target": t.what, "measured": t.measured, "met": t.met }))
            .collect();
        json!({ "title": self.title, "rows": rows, "notes": self.notes, "targets": targets })
    }
}
