//! Periods in the Gregorian and Solar Hijri calendars, normalized to
//! inclusive Gregorian date ranges. Solar Hijri dates are converted with
//! icu_calendar's Persian calendar, never with a hand-made table.

use chrono::NaiveDate;
use icu_calendar::{Date, Iso};

/// Years accepted in each calendar, so that every period maps into
/// chrono's and icu's ranges with room to spare.
const GREGORIAN_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;
const SOLAR_HIJRI_YEARS: std::ops::RangeInclusive<i32> = 1..=9000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum Calendar {
    Gregorian,
    SolarHijri,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum CalendarPart {
    Year,
    Quarter(u8),
    Month(u8),
}

/// An inclusive range of Gregorian dates, start not after end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl DateRange {
    pub(crate) fn new(start: NaiveDate, end: NaiveDate) -> Result<Self, String> {
        if start > end {
            return Err(format!("start {start} is after end {end}"));
        }
        Ok(DateRange { start, end })
    }

    pub(crate) fn overlaps(&self, other: &DateRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// How a period was stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) enum PeriodSpec {
    Calendar {
        calendar: Calendar,
        year: i32,
        part: CalendarPart,
    },
    Range(DateRange),
}

/// Which part of a calendar period is wrong, so the caller can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeriodError {
    Year(String),
    Quarter(String),
    Month(String),
}

/// A period as stated plus its Gregorian range and canonical label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub(crate) struct Period {
    pub spec: PeriodSpec,
    pub range: DateRange,
    pub label: String,
}

impl Period {
    /// A period from an explicit date range.
    pub(crate) fn from_range(range: DateRange) -> Period {
        Period {
            spec: PeriodSpec::Range(range),
            label: format!("{}..{}", range.start, range.end),
            range,
        }
    }

    /// A calendar year, quarter or month, resolved to Gregorian dates.
    pub(crate) fn from_calendar(
        calendar: Calendar,
        year: i32,
        part: CalendarPart,
    ) -> Result<Period, PeriodError> {
        let (first_month, last_month) = match part {
            CalendarPart::Year => (1, 12),
            CalendarPart::Quarter(q @ 1..=4) => (3 * q - 2, 3 * q),
            CalendarPart::Quarter(q) => {
                return Err(PeriodError::Quarter(format!(
                    "{q} is not a quarter (1 to 4)"
                )));
            }
            CalendarPart::Month(m @ 1..=12) => (m, m),
            CalendarPart::Month(m) => {
                return Err(PeriodError::Month(format!("{m} is not a month (1 to 12)")));
            }
        };
        let (years, suffix) = match calendar {
            Calendar::Gregorian => (GREGORIAN_YEARS, ""),
            Calendar::SolarHijri => (SOLAR_HIJRI_YEARS, " SH"),
        };
        if !years.contains(&year) {
            return Err(PeriodError::Year(format!(
                "{year} is outside {}..={}",
                years.start(),
                years.end()
            )));
        }
        let range = match calendar {
            Calendar::Gregorian => gregorian_months(year, first_month, last_month),
            Calendar::SolarHijri => solar_hijri_months(year, first_month, last_month),
        }
        .ok_or_else(|| PeriodError::Year(format!("{year} cannot be converted to dates")))?;
        let label = match part {
            CalendarPart::Year => format!("{year}{suffix}"),
            CalendarPart::Quarter(q) => format!("{year}-Q{q}{suffix}"),
            CalendarPart::Month(m) => format!("{year}-{m:02}{suffix}"),
        };
        Ok(Period {
            spec: PeriodSpec::Calendar {
                calendar,
                year,
                part,
            },
            range,
            label,
        })
    }

    pub(crate) fn start(&self) -> NaiveDate {
        self.range.start
    }

    pub(crate) fn end(&self) -> NaiveDate {
        self.range.end
    }
}

fn gregorian_months(year: i32, first: u8, last: u8) -> Option<DateRange> {
    let start = NaiveDate::from_ymd_opt(year, first.into(), 1)?;
    let after = if last == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, u32::from(last) + 1, 1)
    };
    // Year 9999's end has no following January in chrono's range.
    let end = match after {
        Some(next) => next.pred_opt()?,
        None => NaiveDate::from_ymd_opt(year, 12, 31)?,
    };
    Some(DateRange { start, end })
}

fn solar_hijri_months(year: i32, first: u8, last: u8) -> Option<DateRange> {
    let start = Date::try_new_persian(year, first, 1).ok()?;
    let last_month_start = Date::try_new_persian(year, last, 1).ok()?;
    let end = Date::try_new_persian(year, last, last_month_start.days_in_month()).ok()?;
    Some(DateRange {
        start: to_gregorian(start)?,
        end: to_gregorian(end)?,
    })
}

fn to_gregorian<C: icu_calendar::AsCalendar>(date: Date<C>) -> Option<NaiveDate> {
    let iso = date.to_calendar(Iso);
    NaiveDate::from_ymd_opt(
        iso.year().extended_year(),
        iso.month().ordinal.into(),
        iso.day_of_month().0.into(),
    )
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    /// A date as a Solar Hijri (year, month, day), to check conversions.
    fn solar_hijri_of(date: NaiveDate) -> Option<(i32, u8, u8)> {
        let month = u8::try_from(date.month()).ok()?;
        let day = u8::try_from(date.day()).ok()?;
        let persian = Date::try_new_iso(date.year(), month, day)
            .ok()?
            .to_calendar(icu_calendar::cal::Persian);
        Some((
            persian.year().extended_year(),
            persian.month().ordinal,
            persian.day_of_month().0,
        ))
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn solar_hijri_boundaries() {
        let q1 =
            Period::from_calendar(Calendar::SolarHijri, 1403, CalendarPart::Quarter(1)).unwrap();
        assert_eq!(
            q1.range,
            DateRange {
                start: ymd(2024, 3, 20),
                end: ymd(2024, 6, 20)
            }
        );
        assert_eq!(q1.label, "1403-Q1 SH");
        let year = Period::from_calendar(Calendar::SolarHijri, 1403, CalendarPart::Year).unwrap();
        assert_eq!(
            year.end(),
            ymd(2025, 3, 20),
            "1403 is leap: 30 Esfand = 2025-03-20"
        );
        let y1402 = Period::from_calendar(Calendar::SolarHijri, 1402, CalendarPart::Year).unwrap();
        assert_eq!(y1402.start(), ymd(2023, 3, 21));
        assert_eq!(solar_hijri_of(ymd(2025, 3, 20)), Some((1403, 12, 30)));
    }

    #[test]
    fn gregorian_parts() {
        let q2 =
            Period::from_calendar(Calendar::Gregorian, 2024, CalendarPart::Quarter(2)).unwrap();
        assert_eq!(
            (q2.start(), q2.end(), q2.label.as_str()),
            (ymd(2024, 4, 1), ymd(2024, 6, 30), "2024-Q2")
        );
        let feb = Period::from_calendar(Calendar::Gregorian, 2024, CalendarPart::Month(2)).unwrap();
        assert_eq!(feb.end(), ymd(2024, 2, 29));
        assert!(matches!(
            Period::from_calendar(Calendar::Gregorian, 2024, CalendarPart::Quarter(5)),
            Err(PeriodError::Quarter(_))
        ));
        assert!(Period::from_calendar(Calendar::Gregorian, 9999, CalendarPart::Year).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use chrono::Datelike;
    use icu_calendar::Date;
    use proptest::prelude::*;

    use super::*;

    fn solar_hijri(date: NaiveDate) -> (i32, u8, u8) {
        let persian = Date::try_new_iso(date.year(), date.month() as u8, date.day() as u8)
            .unwrap()
            .to_calendar(icu_calendar::cal::Persian);
        (
            persian.year().extended_year(),
            persian.month().ordinal,
            persian.day_of_month().0,
        )
    }

    fn part(code: u8) -> (CalendarPart, u8, u8) {
        match code {
            0 => (CalendarPart::Year, 1, 12),
            q @ 1..=4 => (CalendarPart::Quarter(q), 3 * q - 2, 3 * q),
            m => (CalendarPart::Month(m - 4), m - 4, m - 4),
        }
    }

    proptest! {
        /// A Solar Hijri year, quarter or month, resolved to Gregorian
        /// dates and converted back, is the same period: it starts on the
        /// 1st of its first month, ends in its last month, and the next day
        /// starts the following month.
        #[test]
        fn solar_hijri_periods_round_trip(year in 1..=3000i32, code in 0u8..=16) {
            prop_assume!(SOLAR_HIJRI_YEARS.contains(&year));
            let (part, first, last) = part(code);
            let period = Period::from_calendar(Calendar::SolarHijri, year, part).unwrap();
            prop_assert_eq!(solar_hijri(period.start()), (year, first, 1));
            let (end_year, end_month, _) = solar_hijri(period.end());
            prop_assert_eq!((end_year, end_month), (year, last));
            let after = solar_hijri(period.end().succ_opt().unwrap());
            prop_assert_eq!(after.2, 1, "the day after the end starts a month");
            prop_assert!(period.start() <= period.end());
        }

        /// Gregorian periods cover exactly their months.
        #[test]
        fn gregorian_periods_cover_their_months(year in 1..=9999i32, code in 0u8..=16) {
            prop_assume!(GREGORIAN_YEARS.contains(&year));
            let (part, first, last) = part(code);
            let period = Period::from_calendar(Calendar::Gregorian, year, part).unwrap();
            prop_assert_eq!(period.start(), NaiveDate::from_ymd_opt(year, first.into(), 1).unwrap());
            prop_assert_eq!((period.end().year(), period.end().month()), (year, u32::from(last)));
            prop_assert_eq!(period.end().succ_opt().unwrap().day(), 1);
        }
    }
}
