//! Export reports: the report, with its change computed or stated, and the
//! publish request.

use ulid::Ulid;

use super::scalars::{bound, bounded_money, period, required_period, source, trade_keys};
use super::{MAX_HEADLINE_LEN, Violations, Write, join, request_key};
use crate::domain::{BoundedMoney, Change, ExportReport};
use crate::error::Result;
use crate::pb;

/// An export report to publish; the change is computed here when both
/// values are given.
fn export_report(
    v: &mut Violations,
    path: &str,
    value: Option<&pb::ExportReport>,
) -> Option<ExportReport> {
    let pb::ExportReport {
        // Output only: the store assigns or links them.
        id: _,
        sequence: _,
        publish_time: _,
        trade_record_id: _,
        baseline_trade_record_id: _,
        exporter,
        importer,
        hs_code,
        commodity,
        headline,
        source,
        period,
        value,
        baseline_period,
        baseline_value,
        change_percent,
        change_bound,
    } = v.required(path, value)?;
    let keys = trade_keys(v, path, [exporter, importer, hs_code, commodity]);
    let headline = v.text(&join(path, "headline"), headline, MAX_HEADLINE_LEN, true);
    let source = self::source(v, &join(path, "source"), source.as_ref());
    let reported = required_period(v, &join(path, "period"), period.as_ref());
    let current = value
        .as_ref()
        .and_then(|m| bounded_money(v, &join(path, "value"), m));
    let baseline = baseline_period
        .as_ref()
        .and_then(|p| self::period(v, &join(path, "baseline_period"), p));
    let baseline_money = baseline_value
        .as_ref()
        .and_then(|m| bounded_money(v, &join(path, "baseline_value"), m));
    if baseline_value.is_some() && baseline_period.is_none() {
        v.add(
            join(path, "baseline_period"),
            "is required with baseline_value",
        );
    }
    if let (Some(p), Some(b)) = (&reported, &baseline)
        && p.range == b.range
    {
        v.add(join(path, "baseline_period"), "must differ from period");
    }
    let stated = StatedChange {
        percent: *change_percent,
        bound: *change_bound,
        has_baseline_period: baseline_period.is_some(),
    };
    let change = change(v, path, &current, &baseline_money, stated);
    Some(ExportReport {
        id: Ulid::nil(),
        sequence: 0,
        publish_time: std::time::SystemTime::UNIX_EPOCH,
        exporter: keys.exporter?,
        importer: keys.importer?,
        hs_code: keys.hs_code?,
        commodity: keys.commodity,
        headline,
        source: source?,
        period: reported?,
        value: current,
        baseline_period: baseline,
        baseline_value: baseline_money,
        change,
        trade_record_id: None,
        baseline_trade_record_id: None,
    })
}

/// The change as the request states it, when it carries no values.
struct StatedChange {
    percent: Option<f64>,
    bound: i32,
    has_baseline_period: bool,
}

/// The change: computed from both values when they are given, else the
/// stated one, which needs a baseline period.
fn change(
    v: &mut Violations,
    path: &str,
    current: &Option<BoundedMoney>,
    baseline: &Option<BoundedMoney>,
    stated: StatedChange,
) -> Option<Change> {
    if let (Some(current), Some(baseline)) = (current, baseline) {
        if current.money.currency != baseline.money.currency {
            v.add(
                join(path, "baseline_value.value.currency_code"),
                "must match the currency of value",
            );
        }
        return Change::between(current, baseline);
    }
    match stated.percent {
        None => None,
        Some(_) if !stated.has_baseline_period => {
            v.add(
                join(path, "baseline_period"),
                "is required with change_percent",
            );
            None
        }
        Some(p) if !p.is_finite() || p < -100.0 => {
            v.add(
                join(path, "change_percent"),
                format!("{p} is not a finite change of at least -100"),
            );
            None
        }
        Some(percent) => Some(Change {
            percent,
            bound: bound(v, &join(path, "change_bound"), stated.bound),
        }),
    }
}

/// PublishExportReport.
pub(crate) fn publish_export_report(
    mut request: pb::PublishExportReportRequest,
) -> Result<Write<ExportReport>> {
    let mut v = Violations::default();
    let key = request_key(&mut v, &mut request, |r| std::mem::take(&mut r.request_id));
    let pb::PublishExportReportRequest {
        export_report,
        request_id: _,
    } = &request;
    let report = self::export_report(&mut v, "export_report", export_report.as_ref());
    Ok(Write {
        value: v.finish(report)?,
        request: key,
    })
}
