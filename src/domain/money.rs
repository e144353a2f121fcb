//! Money (never a float), bounds on reported figures, and quantities.

use iso_currency::Currency;

use super::quote;

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// An amount in an ISO 4217 currency, as whole units plus nanos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Money {
    pub currency: Currency,
    pub units: i64,
    pub nanos: i32,
}

/// Which part of a `Money` is wrong, so the caller can name the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MoneyError {
    Currency(String),
    Nanos(String),
}

impl Money {
    pub(crate) fn new(currency_code: &str, units: i64, nanos: i32) -> Result<Self, MoneyError> {
        let currency = parse_currency(currency_code).map_err(MoneyError::Currency)?;
        if !(-999_999_999..=999_999_999).contains(&nanos) {
            return Err(MoneyError::Nanos(format!(
                "{nanos} is outside -999999999..=999999999"
            )));
        }
        if (units > 0 && nanos < 0) || (units < 0 && nanos > 0) {
            return Err(MoneyError::Nanos(format!(
                "sign of nanos ({nanos}) must match the sign of units ({units})"
            )));
        }
        Ok(Money {
            currency,
            units,
            nanos,
        })
    }

    /// The amount in nanos; exact, cannot overflow an i128.
    pub(crate) fn total_nanos(&self) -> i128 {
        i128::from(self.units) * NANOS_PER_UNIT + i128::from(self.nanos)
    }

    /// The money of `nanos` in `currency`; `None` past an i64 of units.
    pub(crate) fn from_nanos(currency: Currency, nanos: i128) -> Option<Money> {
        let units = i64::try_from(nanos / NANOS_PER_UNIT).ok()?;
        let nanos = i32::try_from(nanos % NANOS_PER_UNIT).ok()?;
        Some(Money {
            currency,
            units,
            nanos,
        })
    }

    pub(crate) fn is_negative(&self) -> bool {
        self.total_nanos() < 0
    }

    pub(crate) fn currency_code(&self) -> &'static str {
        self.currency.code()
    }
}

pub(crate) fn parse_currency(code: &str) -> Result<Currency, String> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{} is not an ISO 4217 code (three upper-case letters, e.g. \"USD\")",
            quote(code)
        ));
    }
    Currency::from_code(code).ok_or_else(|| format!("{} is not an ISO 4217 currency", quote(code)))
}

/// How a reported figure relates to the true figure.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub(crate) enum Bound {
    #[default]
    Exact,
    AtLeast,
    AtMost,
    Approximate,
}

impl Bound {
    /// The bound of `new / old - 1` given the bounds of `new` and `old`:
    /// the change grows with `new` and shrinks with `old`.
    pub(crate) fn of_change(new: Bound, old: Bound) -> Bound {
        use Bound::*;
        match (new, old) {
            (Exact, Exact) => Exact,
            (Approximate, _) | (_, Approximate) => Approximate,
            (Exact | AtLeast, Exact | AtMost) => AtLeast,
            (Exact | AtMost, Exact | AtLeast) => AtMost,
            // Both could move the change either way.
            (AtLeast, AtLeast) | (AtMost, AtMost) => Approximate,
        }
    }
}

/// A money figure with its bound ("more than $66 million").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BoundedMoney {
    pub money: Money,
    pub bound: Bound,
}

/// A non-money quantity ("more than 1.5 million cars").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Quantity {
    pub amount: f64,
    pub unit: String,
    pub bound: Bound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_enforces_the_nanos_rules() {
        assert!(Money::new("USD", 13_000_000, 0).is_ok());
        assert!(Money::new("USD", -1, -5).is_ok());
        assert!(matches!(
            Money::new("USD", 1, -5),
            Err(MoneyError::Nanos(_))
        ));
        assert!(matches!(
            Money::new("USD", 0, 1_000_000_000),
            Err(MoneyError::Nanos(_))
        ));
        assert!(matches!(
            Money::new("usd", 1, 0),
            Err(MoneyError::Currency(_))
        ));
        assert!(matches!(
            Money::new("XYZ", 1, 0),
            Err(MoneyError::Currency(_))
        ));
    }

    #[test]
    fn change_bounds_follow_monotonicity() {
        use Bound::*;
        assert_eq!(Bound::of_change(AtLeast, Exact), AtLeast);
        assert_eq!(Bound::of_change(Exact, AtLeast), AtMost);
        assert_eq!(Bound::of_change(AtMost, AtLeast), AtMost);
        assert_eq!(Bound::of_change(AtLeast, AtLeast), Approximate);
        assert_eq!(Bound::of_change(Exact, Exact), Exact);
    }
}
