//! Scoped bearer tokens, checked by admission (`admission`) against the
//! scope the method's contract declares (server interceptors do not see
//! the method, and the scope a call needs depends on it).
//!
//! The tokens file lists one token a line, `name scopes sha256`: the name
//! that logs show, the comma-separated scopes, and the SHA-256 of the
//! token in hex. The file never holds a token itself. `#` starts a comment.
//!
//! - A missing or unknown token is `UNAUTHENTICATED`; a known token
//!   without the scope the method needs is `PERMISSION_DENIED`.
//! - Hashes are compared in constant time, against every entry.
//! - Health and reflection stay open; reads are open too with
//!   `allow_anonymous_read` (a token that is sent must still be valid).
//! - The caller's name goes into the request's extensions (`Caller`), so
//!   handlers can log who wrote what.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;

use super::methods::{Access, Method, Scope};

impl Scope {
    fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "publish" => Some(Scope::Publish),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Publish => "publish",
            Scope::Admin => "admin",
        }
    }
}

/// Why a token could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A scope list named a scope that does not exist.
    #[error("unknown scope {0:?}; use read, write, publish or admin")]
    UnknownScope(String),
    /// A scope list named no scope.
    #[error("name at least one scope")]
    NoScope,
    /// A token name other than letters, digits, `-`, `_` and `.`.
    #[error("a token name is letters, digits, '-', '_' and '.'")]
    BadName,
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Parses a comma-separated scope list, such as `read,publish`.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, TokenError> {
    let scopes = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| TokenError::UnknownScope(s.to_owned())))
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    Ok(scopes)
}

/// A new token and its line for the tokens file: the token (`tw_` and 64
/// hex digits of the system's random source), which only its holder
/// keeps, and `NAME SCOPES SHA256`, which the server keeps.
pub fn create_token(name: &str, scopes: &[Scope]) -> Result<(String, String), TokenError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(TokenError::BadName);
    }
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| TokenError::Random)?;
    let token = format!("tw_{}", hex(&secret));
    let scopes: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
    let line = format!(
        "{name} {} {}",
        scopes.join(","),
        hex(&sha256(token.as_bytes()))
    );
    Ok((token, line))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

struct Entry {
    name: Arc<str>,
    scopes: Vec<Scope>,
    hash: [u8; 32],
}

/// The known tokens, by hash.
#[derive(Clone)]
pub(crate) struct Tokens {
    entries: Arc<Vec<Entry>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// Reads a tokens file; every line must parse.
    pub(crate) fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tokens file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scopes, hash] = fields[..] else {
                return Err(format!(
                    "line {}: expected `name scopes sha256`",
                    number + 1
                ));
            };
            let scopes = parse_scopes(scopes).map_err(|e| format!("line {}: {e}", number + 1))?;
            let hash = unhex(hash)
                .ok_or_else(|| format!("line {}: the hash is not 64 hex digits", number + 1))?;
            entries.push(Entry {
                name: name.into(),
                scopes,
                hash,
            });
        }
        Ok(Tokens {
            entries: Arc::new(entries),
        })
    }

    /// The entry whose hash matches `token`'s, compared with every entry
    /// in constant time.
    fn find(&self, token: &str) -> Option<&Entry> {
        let hash = sha256(token.as_bytes());
        let mut found = None;
        for entry in self.entries.iter() {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        found
    }
}

/// The scope a method needs, as its contract declares it (the method
/// table), or `None` for methods open to all. A path the server does not
/// serve needs `admin`: it is answered UNIMPLEMENTED, and only to a caller
/// who may call anything.
fn required_scope(method: Option<&Method>) -> Option<Scope> {
    match method.map(|m| m.access) {
        Some(Access::Open) => None,
        Some(Access::Scoped(scope)) => Some(scope),
        None => Some(Scope::Admin),
    }
}

/// The token checks.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    tokens: Option<Tokens>,
    allow_anonymous_read: bool,
}

impl Auth {
    /// `None` turns the checks off: every call is anonymous and allowed.
    pub(crate) fn new(tokens: Option<Tokens>, allow_anonymous_read: bool) -> Self {
        Auth {
            tokens,
            allow_anonymous_read,
        }
    }

    /// The caller's name (`None` when tokens are off: every caller is
    /// anonymous), or the status that refuses the call.
    pub(crate) fn check(
        &self,
        request: &http::Request<Body>,
        method: Option<&Method>,
    ) -> Result<Option<Arc<str>>, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let needed = required_scope(method);
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| {
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or_else(|| {
                        Status::unauthenticated("authorization must be `Bearer <token>`")
                    })
            })
            .transpose()?;
        let Some(token) = presented else {
            return match needed {
                None => Ok(Some(Arc::from("anonymous"))),
                Some(Scope::Read) if self.allow_anonymous_read => Ok(Some(Arc::from("anonymous"))),
                Some(_) => Err(Status::unauthenticated(
                    "this method needs a token: send `authorization: Bearer <token>`",
                )),
            };
        };
        let entry = tokens
            .find(token.trim())
            .ok_or_else(|| Status::unauthenticated("the token is not known"))?;
        match needed {
            Some(scope)
                if !entry.scopes.contains(&scope) && !entry.scopes.contains(&Scope::Admin) =>
            {
                Err(Status::permission_denied(format!(
                    "token {:?} lacks the {:?} scope this method needs",
                    entry.name,
                    scope.name()
                )))
            }
            _ => Ok(Some(Arc::clone(&entry.name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_matches_its_file_line_and_nothing_else() {
        let (token, line) = create_token("ingest", &[Scope::Write, Scope::Publish]).unwrap();
        assert!(!line.contains(&token), "the file never holds the token");
        let tokens = Tokens::parse(&format!("# comment\n{line}\n")).unwrap();
        let entry = tokens.find(&token).unwrap();
        assert_eq!(&*entry.name, "ingest");
        assert_eq!(entry.scopes, vec![Scope::Write, Scope::Publish]);
        assert!(tokens.find("tw_not-it").is_none());
        let (other, _) = create_token("ingest", &[Scope::Read]).unwrap();
        assert_ne!(token, other, "tokens are random");
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert!(Tokens::parse("a read\n").unwrap_err().contains("line 1"));
        assert!(
            Tokens::parse("\na read,fly 00\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(Tokens::parse("a read 00\n").unwrap_err().contains("64 hex"));
        assert!(parse_scopes("").is_err());
        assert!(create_token("a b", &[Scope::Read]).is_err());
    }

    #[test]
    fn methods_need_the_scope_their_contract_declares() {
        let scope = |p| required_scope(super::super::methods::lookup(p));
        assert_eq!(
            scope("/tradewire.v1.TradeService/GetTradeRecord"),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/ListTradeRecords"),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/tradewire.v1.ExportReportService/SubscribeExportReports"),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/tradewire.v1.AnnouncementService/WatchAnnouncements"),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/SummarizeTrade"),
            Some(Scope::Read)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/CreateTradeRecord"),
            Some(Scope::Write)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/BatchCreateTradeRecords"),
            Some(Scope::Write)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/DeleteTradeRecord"),
            Some(Scope::Write)
        );
        assert_eq!(
            scope("/tradewire.v1.ExportReportService/PublishExportReport"),
            Some(Scope::Publish)
        );
        assert_eq!(
            scope("/tradewire.v1.TradeService/Unknown"),
            Some(Scope::Admin)
        );
        assert_eq!(scope("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            scope("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            None
        );
    }
}
