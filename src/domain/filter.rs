//! Typed filters for lists and subscriptions. Every set field must match.

use super::{Announcement, AnnouncementKind, CountryCode, DateRange, HsPrefix, TradeKeyed};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct TradeFilter {
    pub exporter: Option<CountryCode>,
    pub importer: Option<CountryCode>,
    pub hs_prefix: Option<HsPrefix>,
    pub period_overlaps: Option<DateRange>,
}

impl TradeFilter {
    pub(crate) fn matches(&self, item: &impl TradeKeyed) -> bool {
        self.exporter.is_none_or(|c| c == item.exporter())
            && self.importer.is_none_or(|c| c == item.importer())
            && self
                .hs_prefix
                .as_ref()
                .is_none_or(|p| p.matches(item.hs_code()))
            && self
                .period_overlaps
                .is_none_or(|r| r.overlaps(&item.period().range))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct AnnouncementFilter {
    pub kind: Option<AnnouncementKind>,
    pub country: Option<CountryCode>,
    /// Lower-cased.
    pub organization: Option<String>,
    /// Lower-cased.
    pub person: Option<String>,
    /// Lower-cased.
    pub text: Option<String>,
    pub announced_within: Option<DateRange>,
}

impl AnnouncementFilter {
    pub(crate) fn matches(&self, a: &Announcement) -> bool {
        self.kind.is_none_or(|k| k == a.kind)
            && self.country.is_none_or(|c| a.countries.contains(&c))
            && self
                .organization
                .as_ref()
                .is_none_or(|o| a.organization_keys().any(|k| &k == o))
            && self
                .person
                .as_ref()
                .is_none_or(|p| a.person_keys().any(|k| &k == p))
            && self.text.as_ref().is_none_or(|t| {
                a.headline.to_lowercase().contains(t) || a.body.to_lowercase().contains(t)
            })
            && self
                .announced_within
                .is_none_or(|r| a.announced_date.is_some_and(|d| r.start <= d && d <= r.end))
    }
}
