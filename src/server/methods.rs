//! The method table: every method this server serves, by path, read once
//! from the descriptors of its services. What a method needs comes from
//! the contract, never from its name:
//! - whether its request or its answer streams, from the descriptor;
//! - the scope a token needs, from the `(tradewire.v1.required_scope)`
//!   option each tradewire method declares (`proto/tradewire/v1/
//!   options.proto`); health and reflection are open because of the
//!   descriptor set they come from.
//!
//! The call layer looks a call's method up once, for its metrics labels
//! and log line, and hands the entry to admission (auth, the body and
//! deadline limits) in the request's extensions. A tradewire method without a declared scope is an
//! error at start ([`table`]), so a new RPC cannot be served until its
//! contract says who may call it.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

use crate::api::routes::EncodedOnce;
use crate::pb;

/// What a token may do, as a method's `required_scope` names it. `Admin`
/// may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Get, List, Summarize, Breakdown, and the streams.
    Read,
    /// Create and delete trade records and announcements.
    Write,
    /// Publish export reports.
    Publish,
    /// Everything.
    Admin,
}

/// Who may call a method when tokens are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any caller, with a token or without (health, reflection).
    Open,
    /// A token holding this scope, or `admin`.
    Scoped(Scope),
}

/// One method, as the contract declares it.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) path: Box<str>,
    /// Its service's full name (`tradewire.v1.TradeService`).
    pub(crate) service: Box<str>,
    pub(crate) name: Box<str>,
    /// `unary`, `server_stream`, `client_stream` or `bidi_stream`, as the
    /// grpc-ecosystem metrics label it.
    pub(crate) grpc_type: &'static str,
    /// The request is a stream of messages (reflection's).
    pub(crate) client_streaming: bool,
    /// The answer is a stream of messages (subscriptions, watches).
    pub(crate) server_streaming: bool,
    pub(crate) access: Access,
    /// Answered from encoded bytes by hand (`api::routes`), or `None`: by
    /// the generated server.
    pub(crate) encoded_once: Option<EncodedOnce>,
}

impl Method {
    /// grpc_type, grpc_service and grpc_method, as the grpc-ecosystem
    /// metrics label a call of this method.
    pub(crate) fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("grpc_type", self.grpc_type.to_owned()),
            ("grpc_service", self.service.to_string()),
            ("grpc_method", self.name.to_string()),
        ]
    }
}

/// The table entry of a call's method, which the call layer looks up once
/// and puts in the request's extensions for admission to read. A call to a
/// path not served carries none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallMethod(pub(crate) &'static Method);

/// Every method served, by path.
#[derive(Debug, Default)]
pub(crate) struct Methods {
    by_path: HashMap<Box<str>, Method>,
}

/// The descriptor sets of the services served beside tradewire's, all of
/// whose methods are open.
const OPEN_SETS: [&[u8]; 3] = [
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

const SCOPE_OPTION: &str = "tradewire.v1.required_scope";

impl Methods {
    /// The table of tradewire's methods (their declared scopes) and of the
    /// open services; an error names every tradewire method that declares
    /// no scope.
    pub(crate) fn from_descriptors(tradewire: &[u8]) -> Result<Methods, String> {
        let mut methods = Methods::default();
        let pool = DescriptorPool::decode(tradewire)
            .map_err(|e| format!("tradewire's descriptors do not decode: {e}"))?;
        let option = pool
            .get_extension_by_name(SCOPE_OPTION)
            .ok_or_else(|| format!("the descriptors do not define {SCOPE_OPTION}"))?;
        let mut undeclared = Vec::new();
        for service in pool.services() {
            for method in service.methods() {
                let number = method
                    .options()
                    .get_extension(&option)
                    .as_enum_number()
                    .unwrap_or(0);
                let scope = match pb::Scope::try_from(number) {
                    Ok(pb::Scope::Read) => Some(Scope::Read),
                    Ok(pb::Scope::Write) => Some(Scope::Write),
                    Ok(pb::Scope::Publish) => Some(Scope::Publish),
                    Ok(pb::Scope::Admin) => Some(Scope::Admin),
                    Ok(pb::Scope::Unspecified) | Err(_) => None,
                };
                let Some(scope) = scope else {
                    undeclared.push(method.full_name().to_string());
                    continue;
                };
                methods.insert(
                    service.full_name(),
                    method.name(),
                    (method.is_client_streaming(), method.is_server_streaming()),
                    Access::Scoped(scope),
                );
            }
        }
        for route in EncodedOnce::ALL {
            let (service, name) = route.method();
            let path = format!("/{service}/{name}");
            let method = methods.by_path.get_mut(path.as_str()).ok_or_else(|| {
                format!("{path} is answered from encoded bytes but is not a method of the contract")
            })?;
            method.encoded_once = Some(route);
        }
        if !undeclared.is_empty() {
            return Err(format!(
                "these methods declare no ({SCOPE_OPTION}) option, so no token may call them: {}",
                undeclared.join(", ")
            ));
        }
        for set in OPEN_SETS {
            let pool = DescriptorPool::decode(set)
                .map_err(|e| format!("a service's descriptors do not decode: {e}"))?;
            for service in pool.services() {
                for method in service.methods() {
                    methods.insert(
                        service.full_name(),
                        method.name(),
                        (method.is_client_streaming(), method.is_server_streaming()),
                        Access::Open,
                    );
                }
            }
        }
        Ok(methods)
    }

    fn insert(&mut self, service: &str, name: &str, streaming: (bool, bool), access: Access) {
        let (client_streaming, server_streaming) = streaming;
        let grpc_type = match streaming {
            (false, false) => "unary",
            (false, true) => "server_stream",
            (true, false) => "client_stream",
            (true, true) => "bidi_stream",
        };
        let path: Box<str> = format!("/{service}/{name}").into();
        self.by_path.insert(
            path.clone(),
            Method {
                path,
                service: service.into(),
                name: name.into(),
                grpc_type,
                client_streaming,
                server_streaming,
                access,
                encoded_once: None,
            },
        );
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Method> {
        self.by_path.get(path)
    }

    /// Every method, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Method> {
        self.by_path.values()
    }
}

/// This server's table, built on first use from the compiled-in
/// descriptors. `serve` asks for it before it serves anything, so a
/// method without a declared scope stops the start.
pub(crate) fn table() -> Result<&'static Methods, &'static str> {
    static TABLE: OnceLock<Result<Methods, String>> = OnceLock::new();
    TABLE
        .get_or_init(|| Methods::from_descriptors(pb::FILE_DESCRIPTOR_SET))
        .as_ref()
        .map_err(String::as_str)
}

/// The method at `path`, if this server serves one there.
pub(crate) fn lookup(path: &str) -> Option<&'static Method> {
    table().ok()?.get(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tradewire_method_declares_its_scope() {
        let methods = table().unwrap();
        let ours: Vec<&Method> = methods
            .iter()
            .filter(|m| m.service.starts_with("tradewire.v1."))
            .collect();
        assert_eq!(ours.len(), 18, "every RPC of the three services");
        let scope = |path: &str| methods.get(path).map(|m| m.access);
        assert_eq!(
            scope("/tradewire.v1.TradeService/GetTradeRecord"),
            Some(Access::Scoped(Scope::Read))
        );
        assert_eq!(
            scope("/tradewire.v1.ExportReportService/PublishExportReport"),
            Some(Access::Scoped(Scope::Publish))
        );
        assert_eq!(
            scope("/tradewire.v1.AnnouncementService/DeleteAnnouncement"),
            Some(Access::Scoped(Scope::Write))
        );
        assert_eq!(scope("/grpc.health.v1.Health/Check"), Some(Access::Open));
        assert_eq!(
            scope("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Access::Open)
        );
    }

    #[test]
    fn the_methods_answered_from_encoded_bytes_are_marked() {
        let methods = table().unwrap();
        let route = |path: &str| methods.get(path).and_then(|m| m.encoded_once);
        assert_eq!(
            route("/tradewire.v1.TradeService/GetTradeRecord"),
            Some(EncodedOnce::GetTradeRecord)
        );
        assert_eq!(
            route("/tradewire.v1.TradeService/ListTradeRecords"),
            Some(EncodedOnce::ListTradeRecords)
        );
        assert_eq!(
            route("/tradewire.v1.ExportReportService/SubscribeExportReports"),
            Some(EncodedOnce::SubscribeExportReports)
        );
        assert_eq!(route("/tradewire.v1.TradeService/CreateTradeRecord"), None);
        assert_eq!(
            methods.iter().filter(|m| m.encoded_once.is_some()).count(),
            EncodedOnce::ALL.len()
        );
    }

    #[test]
    fn streaming_comes_from_the_descriptors() {
        let methods = table().unwrap();
        let kind = |path: &str| methods.get(path).map(|m| m.grpc_type);
        assert_eq!(
            kind("/tradewire.v1.ExportReportService/SubscribeExportReports"),
            Some("server_stream")
        );
        assert_eq!(
            kind("/tradewire.v1.AnnouncementService/WatchAnnouncements"),
            Some("server_stream")
        );
        assert_eq!(kind("/grpc.health.v1.Health/Watch"), Some("server_stream"));
        assert_eq!(
            kind("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some("bidi_stream")
        );
        assert_eq!(
            kind("/tradewire.v1.TradeService/GetTradeRecord"),
            Some("unary")
        );
    }

    /// A method whose contract declares no scope is refused, named. The
    /// set is edited as a dynamic message: prost's own descriptor types
    /// would drop every method's option.
    #[test]
    fn a_method_without_a_declared_scope_is_refused() {
        use prost::Message as _;
        use prost_reflect::{DynamicMessage, Value};

        let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let kind = pool
            .get_message_by_name("google.protobuf.FileDescriptorSet")
            .unwrap();
        let mut set = DynamicMessage::decode(kind, pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut added = false;
        let Some(Value::List(files)) = set.get_field_by_name_mut("file") else {
            panic!("a set has files");
        };
        for file in files {
            let Value::Message(file) = file else { continue };
            let Some(Value::List(services)) = file.get_field_by_name_mut("service") else {
                continue;
            };
            for service in services {
                let Value::Message(service) = service else {
                    continue;
                };
                if service.get_field_by_name("name").as_deref()
                    != Some(&Value::String("TradeService".into()))
                {
                    continue;
                }
                let Some(Value::List(methods)) = service.get_field_by_name_mut("method") else {
                    continue;
                };
                let Some(Value::Message(first)) = methods.first() else {
                    continue;
                };
                let mut undeclared = first.clone();
                undeclared.set_field_by_name("name", Value::String("ExportEverything".into()));
                undeclared.clear_field_by_name("options");
                methods.push(Value::Message(undeclared));
                added = true;
            }
        }
        assert!(added);
        let refused = Methods::from_descriptors(&set.encode_to_vec()).unwrap_err();
        assert!(
            refused.contains("tradewire.v1.TradeService.ExportEverything"),
            "{refused}"
        );
        assert!(!refused.contains("GetTradeRecord"), "{refused}");
    }
}
