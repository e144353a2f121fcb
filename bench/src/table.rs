//! One results table per mode, printed as text and optionally kept as JSON.

use serde_json::{Map, Value, json};

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub title: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
    pub notes: Vec<String>,
}

impl Table {
    pub(crate) fn new(title: impl Into<String>, columns: &[&'static str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, values: Vec<Value>) {
        self.rows.push(values);
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
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

    pub(crate) fn print(&self) {
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
        println!("\n## {}\n", self.title);
        let line = |values: Vec<String>| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect();
            println!("| {} |", padded.join(" | "));
        };
        line(self.columns.iter().map(|c| c.to_string()).collect());
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| format!("{}:", "-".repeat(w + 1)))
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in cells {
            line(row);
        }
        for note in &self.notes {
            println!("\n{note}");
        }
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
        json!({ "title": self.title, "rows": rows, "notes": self.notes })
    }
}
