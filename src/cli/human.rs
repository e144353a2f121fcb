//! How records, reports and announcements read to a person: the one-line
//! forms `watch` prints, and tables (comfy-table) for `list` and `get`.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tradewire::pb;

fn bound_sign(bound: i32) -> &'static str {
    match pb::Bound::try_from(bound) {
        Ok(pb::Bound::AtLeast) => "≥ ",
        Ok(pb::Bound::AtMost) => "≤ ",
        Ok(pb::Bound::Approximate) => "≈ ",
        _ => "",
    }
}

/// Thousands separated: 66000000 → "66,000,000".
fn grouped(units: i64) -> String {
    let digits = units.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if units < 0 {
        out.insert(0, '-');
    }
    out
}

/// "≥ $66,000,000", "€1,200 000" style money with its bound.
pub(crate) fn money(value: Option<&pb::BoundedMoney>) -> String {
    let Some(value) = value else {
        return "-".into();
    };
    let Some(money) = &value.value else {
        return "-".into();
    };
    let amount = if money.nanos == 0 {
        grouped(money.units)
    } else {
        let fraction = format!("{:09}", money.nanos.unsigned_abs());
        format!(
            "{}.{}",
            grouped(money.units),
            fraction.trim_end_matches('0')
        )
    };
    let amount = match money.currency_code.as_str() {
        "USD" => format!("${amount}"),
        code => format!("{amount} {code}"),
    };
    format!("{}{amount}", bound_sign(value.bound))
}

fn label(period: Option<&pb::Period>) -> &str {
    period.map_or("-", |p| p.label.as_str())
}

/// "≥ +407.69% on 2022", or empty when the report states no change.
fn change(report: &pb::ExportReport) -> String {
    match report.change_percent {
        Some(percent) => format!(
            "{}{percent:+.2}% on {}",
            bound_sign(report.change_bound),
            label(report.baseline_period.as_ref())
        ),
        None => String::new(),
    }
}

/// The line `reports watch` prints:
/// "#3 IRN→RUS 8708 2023: ≥ $66,000,000 (≥ +407.69% on 2022)".
pub(crate) fn report_line(report: &pb::ExportReport) -> String {
    let change = change(report);
    // A report may state only a change ("grew 100%"), only a value, or both.
    let figures = match (report.value.as_ref(), change.is_empty()) {
        (Some(value), true) => money(Some(value)),
        (Some(value), false) => format!("{} ({change})", money(Some(value))),
        (None, _) => change,
    };
    format!(
        "#{} {}→{} {} {}: {figures}",
        report.sequence,
        report.exporter,
        report.importer,
        report.hs_code,
        label(report.period.as_ref()),
    )
}

fn kind(kind: i32) -> String {
    pb::AnnouncementKind::try_from(kind).map_or_else(
        |_| kind.to_string(),
        |k| {
            k.as_str_name()
                .trim_start_matches("ANNOUNCEMENT_KIND_")
                .to_lowercase()
        },
    )
}

/// The line `announcements watch` prints: "#2 meeting: headline".
pub(crate) fn announcement_line(a: &pb::Announcement) -> String {
    format!("#{} {}: {}", a.sequence, kind(a.kind), a.headline)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

pub(crate) fn records_table(records: &[pb::TradeRecord]) -> Table {
    let mut t = table(&["id", "pair", "hs", "period", "value", "source"]);
    for r in records {
        let source = r
            .source
            .as_ref()
            .map_or(String::new(), |s| s.organization.clone());
        t.add_row(vec![
            r.id.clone(),
            format!("{}→{}", r.exporter, r.importer),
            r.hs_code.clone(),
            label(r.period.as_ref()).to_owned(),
            money(r.value.as_ref()),
            source,
        ]);
    }
    t
}

pub(crate) fn reports_table(reports: &[pb::ExportReport]) -> Table {
    let mut t = table(&["seq", "pair", "hs", "period", "value", "change", "headline"]);
    for r in reports {
        t.add_row(vec![
            r.sequence.to_string(),
            format!("{}→{}", r.exporter, r.importer),
            r.hs_code.clone(),
            label(r.period.as_ref()).to_owned(),
            money(r.value.as_ref()),
            change(r),
            r.headline.clone(),
        ]);
    }
    t
}

pub(crate) fn announcements_table(announcements: &[pb::Announcement]) -> Table {
    let mut t = table(&["seq", "kind", "date", "countries", "headline"]);
    for a in announcements {
        let date = a.announced_date.as_ref().map_or(String::new(), |d| {
            format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
        });
        t.add_row(vec![
            a.sequence.to_string(),
            kind(a.kind),
            date,
            a.countries.join(", "),
            a.headline.clone(),
        ]);
    }
    t
}

/// "≥ +407.69%" (with "stated" when an export report states it).
fn trade_change(change: Option<&pb::TradeChange>) -> String {
    match change {
        Some(c) if c.stated => format!("{}{:+.2}% (stated)", bound_sign(c.bound), c.percent),
        Some(c) => format!("{}{:+.2}%", bound_sign(c.bound), c.percent),
        None => String::new(),
    }
}

pub(crate) fn summary_table(buckets: &[pb::TradeSummaryBucket]) -> Table {
    let mut t = table(&[
        "period",
        "total",
        "records",
        "vs previous",
        "vs a year earlier",
        "unallocated",
        "sources",
    ]);
    for b in buckets {
        let total = match &b.total_high {
            Some(high) => format!("{} .. {}", money(b.total.as_ref()), money(Some(high))),
            None => money(b.total.as_ref()),
        };
        t.add_row(vec![
            label(b.period.as_ref()).to_owned(),
            total,
            b.record_count.to_string(),
            trade_change(b.change_from_previous.as_ref()),
            trade_change(b.change_from_year_earlier.as_ref()),
            b.unallocated
                .iter()
                .map(|u| label(u.period.as_ref()))
                .collect::<Vec<_>>()
                .join(", "),
            b.sources.join(", "),
        ]);
    }
    t
}

pub(crate) fn breakdown_table(breakdown: &pb::BreakdownTradeResponse) -> Table {
    let mut t = table(&["", "value", "share"]);
    for s in breakdown.shares.iter().chain(&breakdown.others) {
        t.add_row(vec![
            s.key.clone(),
            money(s.value.as_ref()),
            format!("{:.2}%", s.percent),
        ]);
    }
    t.add_row(vec![
        format!("total, {}", label(breakdown.period.as_ref())),
        money(breakdown.total.as_ref()),
        if breakdown.total.is_some() {
            "100.00%".to_owned()
        } else {
            String::new()
        },
    ]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_with_its_bound_and_separators() {
        let m = |units, nanos, bound: pb::Bound| pb::BoundedMoney {
            value: Some(pb::Money {
                currency_code: "USD".into(),
                units,
                nanos,
            }),
            bound: bound.into(),
        };
        assert_eq!(
            money(Some(&m(66_000_000, 0, pb::Bound::AtLeast))),
            "≥ $66,000,000"
        );
        assert_eq!(
            money(Some(&m(13_000_000, 0, pb::Bound::Exact))),
            "$13,000,000"
        );
        assert_eq!(
            money(Some(&m(999, 500_000_000, pb::Bound::Exact))),
            "$999.5"
        );
        assert_eq!(money(None), "-");
    }

    #[test]
    fn a_report_line_states_its_value_and_change() {
        let report = pb::ExportReport {
            sequence: 1,
            exporter: "IRN".into(),
            importer: "RUS".into(),
            hs_code: "8708".into(),
            period: Some(pb::Period {
                label: "2023".into(),
                ..Default::default()
            }),
            value: Some(pb::BoundedMoney {
                value: Some(pb::Money {
                    currency_code: "USD".into(),
                    units: 66_000_000,
                    nanos: 0,
                }),
                bound: pb::Bound::AtLeast.into(),
            }),
            baseline_period: Some(pb::Period {
                label: "2022".into(),
                ..Default::default()
            }),
            change_percent: Some(407.6923),
            change_bound: pb::Bound::AtLeast.into(),
            ..Default::default()
        };
        assert_eq!(
            report_line(&report),
            "#1 IRN→RUS 8708 2023: ≥ $66,000,000 (≥ +407.69% on 2022)"
        );
        let change_only = pb::ExportReport {
            value: None,
            change_bound: pb::Bound::Exact.into(),
            ..report
        };
        assert_eq!(
            report_line(&change_only),
            "#1 IRN→RUS 8708 2023: +407.69% on 2022"
        );
    }
}
