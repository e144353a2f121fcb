//! Breakdowns: one period's figures ranked by partner or by HS code, each
//! group counted by the summaries' rule (as one bucket), the rest summed
//! as "others".

use std::collections::BTreeMap;

use iso_currency::Currency;

use super::{EMPTY, SummaryError, UnallocatedList, bucket, one_currency};
use crate::domain::{BoundedMoney, Period, TradeFilter, TradeRecord};

/// What a breakdown ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakdownBy {
    /// The other side of the one country given.
    Partner,
    /// HS codes cut to this many digits.
    HsCode(usize),
}

/// What to break down.
#[derive(Debug, Clone)]
pub(crate) struct BreakdownQuery {
    pub filter: TradeFilter,
    pub period: Period,
    pub by: BreakdownBy,
    pub top: usize,
    pub currency: Option<Currency>,
}

/// One ranked partner or HS code.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    pub key: String,
    pub value: BoundedMoney,
    pub percent: f64,
}

/// A breakdown of one period.
#[derive(Debug, Clone)]
pub(crate) struct Breakdown {
    pub period: Period,
    pub total: Option<BoundedMoney>,
    pub shares: Vec<Share>,
    pub others: Option<Share>,
    pub currency: Option<Currency>,
    pub unallocated: UnallocatedList,
}

/// Ranks `records` (matching the query's filter and currency, overlapping
/// its period) by the query's dimension, each group counted as one bucket.
pub(crate) fn breakdown(
    query: &BreakdownQuery,
    records: &[&TradeRecord],
) -> Result<Breakdown, SummaryError> {
    let currency = one_currency(records)?;
    let mut groups: BTreeMap<String, Vec<&TradeRecord>> = BTreeMap::new();
    for record in records {
        let key = match query.by {
            BreakdownBy::Partner if query.filter.exporter.is_some() => record.importer.to_string(),
            BreakdownBy::Partner => record.exporter.to_string(),
            BreakdownBy::HsCode(digits) => {
                let code = record.hs_code.as_str();
                code[..digits.min(code.len())].to_owned()
            }
        };
        groups.entry(key).or_default().push(*record);
    }
    let mut unallocated = UnallocatedList::default();
    let mut ranked = Vec::new();
    for (key, group) in groups {
        let counted = bucket(query.period.clone(), &group, currency)?;
        unallocated.extend(counted.unallocated);
        if let Some(total) = counted.total {
            ranked.push((key, total));
        }
    }
    ranked.sort_by(|(ka, a), (kb, b)| {
        b.money
            .total_nanos()
            .cmp(&a.money.total_nanos())
            .then_with(|| ka.cmp(kb))
    });
    let (Some(currency), false) = (currency, ranked.is_empty()) else {
        return Ok(Breakdown {
            period: query.period.clone(),
            total: None,
            shares: Vec::new(),
            others: None,
            currency: None,
            unallocated,
        });
    };
    let all = ranked.iter().fold(EMPTY, |sum, (_, v)| sum.add(v));
    let percent = |nanos: i128| {
        if all.nanos == 0 {
            0.0
        } else {
            nanos as f64 * 100.0 / all.nanos as f64
        }
    };
    let rest = ranked.split_off(query.top.min(ranked.len()));
    let others = if rest.is_empty() {
        None
    } else {
        let sum = rest.iter().fold(EMPTY, |sum, (_, v)| sum.add(v));
        Some(Share {
            key: "others".into(),
            value: sum.money(currency)?,
            percent: percent(sum.nanos),
        })
    };
    Ok(Breakdown {
        period: query.period.clone(),
        total: Some(all.money(currency)?),
        shares: ranked
            .into_iter()
            .map(|(key, value)| Share {
                percent: percent(value.money.total_nanos()),
                key,
                value,
            })
            .collect(),
        others,
        currency: Some(currency),
        unallocated,
    })
}
