//! Rewriting a relayed HEP3 packet's identity chunks, like heplify's collector `-replacetoken`
//! (hep.md §3.1): node id 0x000c, node name 0x0013, password 0x000e.
//!
//! Every other chunk (vendor chunks and unknown types included) is copied byte for byte in its
//! original order, and the packet keeps its own id (`HEP3` or `EEP3`). A replaced chunk keeps
//! its position; a chunk the packet lacks is inserted just before the first payload chunk
//! (0x000f or 0x0010), or appended when there is none, in the encoder's order: id, password,
//! name.

use bytes::Bytes;

use super::chunk;
use super::encode::{EncodeError, Hep3Writer};
use super::{Hep3, HepMessage};

/// Which identity chunks to set on relayed packets; `None` keeps the sender's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRewrite {
    /// Capture agent id, chunk 0x000c.
    pub node_id: Option<u32>,
    /// Capture agent name, chunk 0x0013.
    pub node_name: Option<String>,
    /// Authentication key, chunk 0x000e.
    pub password: Option<String>,
}

impl IdentityRewrite {
    /// Whether nothing is rewritten.
    pub fn is_empty(&self) -> bool {
        self.node_id.is_none() && self.node_name.is_none() && self.password.is_none()
    }

    /// Sets the rewritten fields on a decoded message.
    pub fn apply_to(&self, m: &mut HepMessage) {
        if let Some(id) = self.node_id {
            m.capture_id = Some(id);
        }
        if let Some(name) = &self.node_name {
            m.node_name = Some(Bytes::copy_from_slice(name.as_bytes()));
        }
        if let Some(pw) = &self.password {
            m.auth_key = Some(Bytes::copy_from_slice(pw.as_bytes()));
        }
    }
}

/// Appends `packet` with its identity chunks rewritten and returns the new packet's length.
/// On error (the packet would outgrow 65 535 bytes) `out` is left as it was.
pub fn rewrite_identity(
    packet: &Hep3<'_>,
    rewrite: &IdentityRewrite,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let id = rewrite.node_id.map(u32::to_be_bytes);
    let name = rewrite.node_name.as_deref().map(str::as_bytes);
    let password = rewrite.password.as_deref().map(str::as_bytes);
    // (chunk type, new body, still to insert)
    let mut slots = [
        (chunk::CAPTURE_ID, id.as_ref().map(|b| &b[..]), false),
        (chunk::AUTH_KEY, password, false),
        (chunk::NODE_NAME, name, false),
    ];
    for slot in &mut slots {
        slot.2 = slot.1.is_some() && !packet.chunks.iter().any(|c| is(c, slot.0));
    }

    let mut w = Hep3Writer::new(out, &packet.magic);
    let mut inserted = false;
    for c in &packet.chunks {
        let is_payload = c.vendor == 0
            && (c.chunk_type == chunk::PAYLOAD || c.chunk_type == chunk::COMPRESSED_PAYLOAD);
        if is_payload && !inserted {
            insert_missing(&mut w, &slots);
            inserted = true;
        }
        let replacement = slots
            .iter()
            .find(|(t, body, _)| body.is_some() && is(c, *t))
            .and_then(|(_, body, _)| *body);
        w.chunk(c.vendor, c.chunk_type, replacement.unwrap_or(c.body));
    }
    if !inserted {
        insert_missing(&mut w, &slots);
    }
    w.finish()
}

fn is(c: &super::Chunk<'_>, chunk_type: u16) -> bool {
    c.vendor == 0 && c.chunk_type == chunk_type
}

fn insert_missing(w: &mut Hep3Writer<'_>, slots: &[(u16, Option<&[u8]>, bool)]) {
    for (chunk_type, body, missing) in slots {
        if let (true, Some(body)) = (missing, body) {
            w.bytes(*chunk_type, body);
        }
    }
}
