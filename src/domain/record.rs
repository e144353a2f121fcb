//! Trade records and the provenance shared by every fact: sources and people.

use std::time::SystemTime;

use chrono::NaiveDate;
use ulid::Ulid;

use super::{BoundedMoney, CountryCode, HsCode, Period, Quantity, TradeKeyed};

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Person {
    pub name: String,
    pub role: String,
    pub organization: String,
}

/// Where a fact comes from; at least an organization or an outlet is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Source {
    pub organization: String,
    pub outlet: String,
    /// Boxed: most sources name no speaker, and a `Person` inline would
    /// cost every stored record 64 bytes.
    pub speaker: Option<Box<Person>>,
    pub url: String,
    pub quote: String,
    pub published_date: Option<NaiveDate>,
}

/// A trade figure. `id` and `create_time` are assigned by the store; on a
/// record that is not stored yet they are `Ulid::nil()` and the epoch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TradeRecord {
    pub id: Ulid,
    pub create_time: SystemTime,
    pub exporter: CountryCode,
    pub importer: CountryCode,
    pub hs_code: HsCode,
    pub commodity: String,
    pub period: Period,
    pub value: BoundedMoney,
    pub quantity: Option<Quantity>,
    pub source: Source,
    /// The record's `tradewire.v1.TradeRecord` encoding, made on first
    /// read and copied into every answer that carries the record; filled
    /// by the API layer.
    #[serde(skip)]
    pub encoded: super::EncodedOnce,
}

/// What makes two trade records the same figure: an export report links to
/// an existing record with this key instead of storing a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RecordKey {
    exporter: CountryCode,
    importer: CountryCode,
    hs_code: HsCode,
    start: NaiveDate,
    end: NaiveDate,
    organization: String,
}

impl TradeRecord {
    pub(crate) fn key(&self) -> RecordKey {
        RecordKey {
            exporter: self.exporter,
            importer: self.importer,
            hs_code: self.hs_code,
            start: self.period.start(),
            end: self.period.end(),
            organization: self.source.organization.to_lowercase(),
        }
    }
}

impl TradeKeyed for TradeRecord {
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
