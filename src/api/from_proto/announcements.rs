//! Announcements: the announcement, its kind, event and forecast, and the
//! create request.

use ulid::Ulid;

use super::scalars::{country, date, id, optional_date, period, person, quantity, source};
use super::{
    MAX_BODY_LEN, MAX_HEADLINE_LEN, MAX_LIST_LEN, MAX_NAME_LEN, MAX_RELATED_IDS, Violations, Write,
    join, request_key,
};
use crate::domain::{AnnouncedEvent, Announcement, AnnouncementKind, Due, Forecast};
use crate::error::Result;
use crate::pb;

pub(super) fn announcement_kind(
    v: &mut Violations,
    field: &str,
    value: i32,
    required: bool,
) -> Option<AnnouncementKind> {
    match pb::AnnouncementKind::try_from(value) {
        Ok(pb::AnnouncementKind::Unspecified) => {
            if required {
                v.add(field, "is required");
            }
            None
        }
        Ok(pb::AnnouncementKind::Meeting) => Some(AnnouncementKind::Meeting),
        Ok(pb::AnnouncementKind::Statement) => Some(AnnouncementKind::Statement),
        Ok(pb::AnnouncementKind::Forecast) => Some(AnnouncementKind::Forecast),
        Ok(pb::AnnouncementKind::Exhibition) => Some(AnnouncementKind::Exhibition),
        Ok(pb::AnnouncementKind::Agreement) => Some(AnnouncementKind::Agreement),
        Ok(pb::AnnouncementKind::Other) => Some(AnnouncementKind::Other),
        Err(_) => {
            v.add(field, format!("{value} is not an AnnouncementKind"));
            None
        }
    }
}

fn forecast(v: &mut Violations, path: &str, value: &pb::Forecast) -> Option<Forecast> {
    let pb::Forecast {
        subject,
        country,
        target,
        due,
        // Output only: derived from `due`.
        due_by: _,
    } = value;
    let subject = v.text(&join(path, "subject"), subject, MAX_NAME_LEN, true);
    let country = self::country(v, &join(path, "country"), country, false);
    let target_field = join(path, "target");
    let target = v
        .required(&target_field, target.as_ref())
        .and_then(|q| quantity(v, &target_field, q));
    let due = match due {
        None => {
            v.add(join(path, "due"), "set due_period or due_date");
            None
        }
        Some(pb::forecast::Due::DuePeriod(p)) => {
            period(v, &join(path, "due_period"), p).map(Due::ByEndOf)
        }
        Some(pb::forecast::Due::DueDate(d)) => date(v, &join(path, "due_date"), d).map(Due::ByDate),
    };
    Some(Forecast {
        subject,
        country,
        target: target?,
        due: due?,
    })
}

fn announced_event(v: &mut Violations, path: &str, value: &pb::Event) -> AnnouncedEvent {
    let pb::Event {
        name,
        location,
        start_date,
    } = value;
    AnnouncedEvent {
        name: v.text(&join(path, "name"), name, MAX_NAME_LEN, true),
        location: v.text(&join(path, "location"), location, MAX_NAME_LEN, false),
        start_date: optional_date(v, &join(path, "start_date"), start_date.as_ref()),
    }
}

/// An announcement to store; id, sequence and create_time are left for the
/// store, which also checks that related trade records exist.
pub(crate) fn announcement(
    v: &mut Violations,
    path: &str,
    value: Option<&pb::Announcement>,
) -> Option<Announcement> {
    let pb::Announcement {
        // Output only: the store assigns them.
        id: _,
        sequence: _,
        create_time: _,
        kind,
        headline,
        body,
        countries,
        organizations,
        people,
        event,
        announced_date,
        forecast,
        source,
        related_trade_record_ids,
    } = v.required(path, value)?;
    let kind = announcement_kind(v, &join(path, "kind"), *kind, true);
    let headline = v.text(&join(path, "headline"), headline, MAX_HEADLINE_LEN, true);
    let body = v.long_text(&join(path, "body"), body, MAX_BODY_LEN);
    let countries = v.each(
        (path, "countries"),
        countries,
        MAX_LIST_LEN,
        |v, field, c| country(v, field, c, true),
    );
    let organizations = v.each(
        (path, "organizations"),
        organizations,
        MAX_LIST_LEN,
        |v, field, o| Some(v.text(field, o, MAX_NAME_LEN, true)),
    );
    let people = v.each((path, "people"), people, MAX_LIST_LEN, |v, field, p| {
        Some(person(v, field, p))
    });
    let event = event
        .as_ref()
        .map(|e| announced_event(v, &join(path, "event"), e));
    let announced_date = optional_date(v, &join(path, "announced_date"), announced_date.as_ref());
    let forecast = forecast
        .as_ref()
        .and_then(|f| self::forecast(v, &join(path, "forecast"), f));
    let source = self::source(v, &join(path, "source"), source.as_ref());
    let related_trade_record_ids = v.each(
        (path, "related_trade_record_ids"),
        related_trade_record_ids,
        MAX_RELATED_IDS,
        |v, field, raw| id(field, raw).map_err(|e| v.absorb(e)).ok(),
    );
    Some(Announcement {
        id: Ulid::nil(),
        sequence: 0,
        create_time: std::time::SystemTime::UNIX_EPOCH,
        kind: kind?,
        headline,
        body,
        countries,
        organizations,
        people,
        event,
        announced_date,
        forecast,
        source: source?,
        related_trade_record_ids,
    })
}

/// CreateAnnouncement.
pub(crate) fn create_announcement(
    mut request: pb::CreateAnnouncementRequest,
) -> Result<Write<Announcement>> {
    let mut v = Violations::default();
    let key = request_key(&mut v, &mut request, |r| std::mem::take(&mut r.request_id));
    let pb::CreateAnnouncementRequest {
        announcement,
        request_id: _,
    } = &request;
    let announcement = self::announcement(&mut v, "announcement", announcement.as_ref());
    Ok(Write {
        value: v.finish(announcement)?,
        request: key,
    })
}
