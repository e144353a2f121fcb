//! Announcements: meetings, statements, forecasts, exhibitions, agreements.

use std::time::SystemTime;

use chrono::NaiveDate;
use ulid::Ulid;

use super::{CountryCode, Period, Person, Quantity, Sequenced, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum AnnouncementKind {
    Meeting,
    Statement,
    Forecast,
    Exhibition,
    Agreement,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
/// The occasion an announcement is about: a meeting, an exhibition.
pub(crate) struct AnnouncedEvent {
    pub name: String,
    pub location: String,
    pub start_date: Option<NaiveDate>,
}

/// When a forecast figure is due.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Due {
    ByEndOf(Period),
    ByDate(NaiveDate),
}

impl Due {
    /// The Gregorian day the figure is due by.
    pub(crate) fn due_by(&self) -> NaiveDate {
        match self {
            Due::ByEndOf(period) => period.end(),
            Due::ByDate(date) => *date,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Forecast {
    pub subject: String,
    pub country: Option<CountryCode>,
    pub target: Quantity,
    pub due: Due,
}

/// A stored announcement. `id`, `sequence` and `create_time` are assigned by
/// the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Announcement {
    pub id: Ulid,
    pub sequence: u64,
    pub create_time: SystemTime,
    pub kind: AnnouncementKind,
    pub headline: String,
    pub body: String,
    pub countries: Vec<CountryCode>,
    pub organizations: Vec<String>,
    pub people: Vec<Person>,
    pub event: Option<AnnouncedEvent>,
    pub announced_date: Option<NaiveDate>,
    pub forecast: Option<Forecast>,
    pub source: Source,
    pub related_trade_record_ids: Vec<Ulid>,
}

impl Announcement {
    /// Every organization it names, in any role, lower-cased for matching.
    pub(crate) fn organization_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.organizations
            .iter()
            .chain(self.people.iter().map(|p| &p.organization))
            .chain(std::iter::once(&self.source.organization))
            .chain(self.source.speaker.iter().map(|p| &p.organization))
            .filter(|o| !o.is_empty())
            .map(|o| o.to_lowercase())
    }

    /// Every person it names, lower-cased for matching.
    pub(crate) fn person_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.people
            .iter()
            .chain(self.source.speaker.as_deref())
            .map(|p| p.name.to_lowercase())
    }
}

impl Sequenced for Announcement {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}
