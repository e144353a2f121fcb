//! Opaque page tokens (AIP-158): the last key of the page and a fingerprint
//! of the filter it was listed with. Keys only grow, so a token stays right
//! while items are written or deleted between pages.

use std::fmt::Display;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

const VERSION: &str = "1";

/// Where a list request stands: the filter its tokens are tied to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageCursor {
    filter: u64,
}

impl PageCursor {
    /// Reads a request's `page_token` for a list filtered by `filter` (the
    /// request's filter message): the cursor, and the key to continue after
    /// (None on the first page).
    pub(crate) fn read<K: FromStr>(
        token: &str,
        filter: &impl prost::Message,
    ) -> Result<(PageCursor, Option<K>)> {
        let cursor = PageCursor {
            filter: super::fingerprint(filter),
        };
        let after = key(decode(token, cursor.filter)?)?;
        Ok((cursor, after))
    }

    /// The `next_page_token` for a page whose last key is `next`, or empty
    /// at the end.
    pub(crate) fn next_token<K: Display>(&self, next: Option<K>) -> String {
        next.map(|k| encode(&k.to_string(), self.filter))
            .unwrap_or_default()
    }
}

fn encode(last_key: &str, filter: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}|{last_key}|{filter:016x}"))
}

/// The key to continue after, or None for the first page.
fn decode(token: &str, filter: u64) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "is not a token returned by this list");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    let (Some(VERSION), Some(key), Some(fingerprint)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if fingerprint != format!("{filter:016x}") {
        return Err(Error::invalid(
            "page_token",
            "was issued for a different filter; start again without a token",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Parses the key inside a token.
fn key<K: FromStr>(key: Option<String>) -> Result<Option<K>> {
    key.map(|k| {
        k.parse()
            .map_err(|_| Error::invalid("page_token", "is not a token returned by this list"))
    })
    .transpose()
}
