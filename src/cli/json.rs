//! Protobuf messages to and from their canonical JSON (the proto3 JSON
//! mapping, as grpcurl prints it), through the compiled-in descriptors.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// The compiled-in descriptors, decoded once per process: decoding them
/// costs far more than converting one message, and a bulk write converts
/// every line of its file.
fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: std::sync::OnceLock<Result<DescriptorPool, String>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(tradewire::pb::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `message` (of type `tradewire.v1.{name}`) as one line of JSON.
pub(crate) fn to_line<M: Message>(message: &M, name: &str) -> Result<String, String> {
    let descriptor = pool()?
        .get_message_by_name(&format!("tradewire.v1.{name}"))
        .ok_or_else(|| format!("no message tradewire.v1.{name}"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// A `tradewire.v1.{name}` message from its JSON.
pub(crate) fn from_json<M: Message + Default>(text: &str, name: &str) -> Result<M, String> {
    let descriptor = pool()?
        .get_message_by_name(&format!("tradewire.v1.{name}"))
        .ok_or_else(|| format!("no message tradewire.v1.{name}"))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let dynamic =
        DynamicMessage::deserialize(descriptor, &mut deserializer).map_err(|e| e.to_string())?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}
