//! Country codes (ISO 3166-1 alpha-3) and Harmonized System commodity codes.

use std::fmt;

use super::quote;

/// An ISO 3166-1 alpha-3 country code, checked against the official list.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(crate) struct CountryCode([u8; 3]);

impl CountryCode {
    pub(crate) fn parse(code: &str) -> Result<Self, String> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(format!(
                "{} is not an ISO 3166-1 alpha-3 code (three upper-case letters, e.g. \"IRN\")",
                quote(code)
            ));
        }
        celes::Country::from_alpha3(code)
            .map_err(|_| format!("{} is not an assigned ISO 3166-1 alpha-3 code", quote(code)))?;
        Ok(CountryCode([bytes[0], bytes[1], bytes[2]]))
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Harmonized System code of 2, 4 or 6 digits ("87", "8708", "870899").
/// A Harmonized System code of 2, 4 or 6 digits, kept inline (a record
/// holds one, and so does each of its index postings' keys). It is
/// written to logs and snapshots as its string, as before it was inline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub(crate) struct HsCode {
    /// The digits, then zeros: byte order is the string's order.
    digits: [u8; 6],
    len: u8,
}

impl HsCode {
    pub(crate) fn parse(code: &str) -> Result<Self, String> {
        if !code.bytes().all(|b| b.is_ascii_digit()) || ![2, 4, 6].contains(&code.len()) {
            return Err(format!(
                "{} is not an HS code: 2, 4 or 6 digits",
                quote(code)
            ));
        }
        if code.starts_with("00") || code.starts_with("98") || code.starts_with("99") {
            return Err(format!("{} is not an HS chapter (01 to 97)", quote(code)));
        }
        let mut digits = [0; 6];
        digits[..code.len()].copy_from_slice(code.as_bytes());
        Ok(HsCode {
            digits,
            len: code.len() as u8,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The broader codes that include this one, broadest first: for
    /// "870899", "87" and "8708".
    pub(crate) fn headings(&self) -> impl Iterator<Item = HsCode> + '_ {
        [2u8, 4]
            .into_iter()
            .filter(|len| *len < self.len)
            .map(|len| {
                let mut digits = [0; 6];
                digits[..usize::from(len)].copy_from_slice(&self.digits[..usize::from(len)]);
                HsCode { digits, len }
            })
    }
}

impl From<HsCode> for String {
    fn from(code: HsCode) -> String {
        code.as_str().to_owned()
    }
}

impl TryFrom<String> for HsCode {
    type Error = String;

    fn try_from(code: String) -> Result<Self, String> {
        HsCode::parse(&code)
    }
}

/// A prefix of HS codes, 1 to 6 digits; "87" matches "8703" and "8708".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HsPrefix(String);

impl HsPrefix {
    pub(crate) fn parse(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty() || prefix.len() > 6 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{} is not an HS prefix: 1 to 6 digits",
                quote(prefix)
            ));
        }
        Ok(HsPrefix(prefix.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn matches(&self, code: &HsCode) -> bool {
        code.as_str().starts_with(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_checked_against_iso_3166() {
        assert_eq!(
            CountryCode::parse("IRN").map(|c| c.to_string()),
            Ok("IRN".into())
        );
        assert!(CountryCode::parse("RUS").is_ok());
        assert!(CountryCode::parse("irn").is_err());
        assert!(CountryCode::parse("XXX").is_err());
        assert!(CountryCode::parse("IR").is_err());
    }

    #[test]
    fn hs_codes_have_two_four_or_six_digits() {
        assert!(HsCode::parse("8708").is_ok());
        assert!(HsCode::parse("87").is_ok());
        assert!(HsCode::parse("870899").is_ok());
        for bad in ["", "8", "870", "87089", "8708999", "87a8", "0012"] {
            assert!(HsCode::parse(bad).is_err(), "{bad}");
        }
        assert!(
            HsPrefix::parse("8")
                .unwrap()
                .matches(&HsCode::parse("8708").unwrap())
        );
        assert!(HsPrefix::parse("").is_err());
    }

    #[test]
    fn hs_codes_order_as_their_strings_and_serialize_as_them() {
        let mut codes: Vec<HsCode> = ["8708", "87", "870899", "8703", "01"]
            .iter()
            .map(|c| HsCode::parse(c).unwrap())
            .collect();
        codes.sort();
        let strings: Vec<&str> = codes.iter().map(HsCode::as_str).collect();
        assert_eq!(strings, ["01", "87", "8703", "8708", "870899"]);
        let code = HsCode::parse("870899").unwrap();
        let bytes = postcard::to_stdvec(&code).unwrap();
        assert_eq!(bytes, postcard::to_stdvec("870899").unwrap());
        assert_eq!(postcard::from_bytes::<HsCode>(&bytes).unwrap(), code);
    }
}
