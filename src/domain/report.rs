//! Export reports and the change they report against a baseline.

use std::time::SystemTime;

use ulid::Ulid;

use super::{
    Bound, BoundedMoney, CountryCode, HsCode, Period, Sequenced, Source, TradeKeyed, TradeRecord,
};

/// A change from a baseline, in percent (+100 means doubled).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Change {
    pub percent: f64,
    pub bound: Bound,
}

impl Change {
    /// The change from `baseline` to `value`, rounded to 0.01 percent in the
    /// direction its bound allows, so that "at least 407.69%" stays true.
    /// None when the baseline is zero or the currencies differ.
    pub(crate) fn between(value: &BoundedMoney, baseline: &BoundedMoney) -> Option<Change> {
        if value.money.currency != baseline.money.currency {
            return None;
        }
        let old = baseline.money.total_nanos();
        if old <= 0 {
            return None;
        }
        let diff = value.money.total_nanos() - old;
        // Hundredths of a percent: diff / old * 10_000, exact integer maths.
        let scaled = diff.checked_mul(10_000)?;
        let bound = Bound::of_change(value.bound, baseline.bound);
        let hundredths = match bound {
            Bound::AtLeast => scaled.div_euclid(old),
            Bound::AtMost => -((-scaled).div_euclid(old)),
            Bound::Exact | Bound::Approximate => {
                let twice = (2 * scaled).div_euclid(old);
                twice.div_euclid(2) + twice.rem_euclid(2)
            }
        };
        Some(Change {
            percent: hundredths as f64 / 100.0,
            bound,
        })
    }
}

/// A published export report. `id`, `sequence`, `publish_time` and the trade
/// record links are assigned by the store at publication.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ExportReport {
    pub id: Ulid,
    pub sequence: u64,
    pub publish_time: SystemTime,
    pub exporter: CountryCode,
    pub importer: CountryCode,
    pub hs_code: HsCode,
    pub commodity: String,
    pub headline: String,
    pub source: Source,
    pub period: Period,
    pub value: Option<BoundedMoney>,
    pub baseline_period: Option<Period>,
    pub baseline_value: Option<BoundedMoney>,
    pub change: Option<Change>,
    pub trade_record_id: Option<Ulid>,
    pub baseline_trade_record_id: Option<Ulid>,
}

impl ExportReport {
    /// The trade records this report's figures amount to, not yet stored:
    /// (value record, baseline record).
    pub(crate) fn figures(&self) -> (Option<TradeRecord>, Option<TradeRecord>) {
        let record = |period: &Period, value: &BoundedMoney| TradeRecord {
            id: Ulid::nil(),
            create_time: SystemTime::UNIX_EPOCH,
            exporter: self.exporter,
            importer: self.importer,
            hs_code: self.hs_code,
            commodity: self.commodity.clone(),
            period: period.clone(),
            value: *value,
            quantity: None,
            source: self.source.clone(),
            revision: 1,
        };
        let current = self.value.as_ref().map(|v| record(&self.period, v));
        let baseline = match (&self.baseline_period, &self.baseline_value) {
            (Some(period), Some(value)) => Some(record(period, value)),
            _ => None,
        };
        (current, baseline)
    }
}

impl Sequenced for ExportReport {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl TradeKeyed for ExportReport {
    fn exporter(&self) -> CountryCode {
        self.exporter
    }
    fn importer(&self) -> CountryCode {
        self.importer
    }
    fn hs_code(&self) -> &HsCode {
        &self.hs_code
    }
    fn period(&self) -> &Period {
        &self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    fn usd(units: i64, bound: Bound) -> BoundedMoney {
        BoundedMoney {
            money: Money::new("USD", units, 0).unwrap(),
            bound,
        }
    }

    #[test]
    fn thirteen_to_more_than_sixty_six_million_is_at_least_407_69_percent() {
        let change = Change::between(
            &usd(66_000_000, Bound::AtLeast),
            &usd(13_000_000, Bound::Exact),
        )
        .unwrap();
        assert_eq!(
            change,
            Change {
                percent: 407.69,
                bound: Bound::AtLeast
            }
        );
    }

    #[test]
    fn rounding_follows_the_bound() {
        // 2/3 - 1 = -33.333..%: at most rounds up, at least rounds down.
        let at_most = Change::between(&usd(2, Bound::AtMost), &usd(3, Bound::Exact)).unwrap();
        assert_eq!(at_most.percent, -33.33);
        let at_least = Change::between(&usd(2, Bound::AtLeast), &usd(3, Bound::Exact)).unwrap();
        assert_eq!(at_least.percent, -33.34);
        let exact = Change::between(&usd(3, Bound::Exact), &usd(2, Bound::Exact)).unwrap();
        assert_eq!(
            exact,
            Change {
                percent: 50.0,
                bound: Bound::Exact
            }
        );
        assert!(Change::between(&usd(3, Bound::Exact), &usd(0, Bound::Exact)).is_none());
    }
}
