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
    /// The revision of its figures, from 1; kept by the store beside the
    /// record (its revisions) and set when the record is stored or
    /// restored, so it is not part of the record's logged form.
    #[serde(skip)]
    pub revision: u32,
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

/// A revision of a record's figures: the fields an update may change.
/// `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RecordPatch {
    pub commodity: Option<String>,
    pub value: Option<BoundedMoney>,
    /// `Some(None)` clears the quantity.
    pub quantity: Option<Option<Quantity>>,
}

impl RecordPatch {
    /// The names of the fields it changes, as the API names them.
    pub(crate) fn fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if self.commodity.is_some() {
            fields.push("commodity".to_owned());
        }
        if self.value.is_some() {
            fields.push("value".to_owned());
        }
        if self.quantity.is_some() {
            fields.push("quantity".to_owned());
        }
        fields
    }

    /// `record` with the patch applied.
    pub(crate) fn applied_to(&self, record: &TradeRecord) -> TradeRecord {
        let mut revised = record.clone();
        if let Some(commodity) = &self.commodity {
            revised.commodity = commodity.clone();
        }
        if let Some(value) = self.value {
            revised.value = value;
        }
        if let Some(quantity) = &self.quantity {
            revised.quantity = quantity.clone();
        }
        revised
    }
}
