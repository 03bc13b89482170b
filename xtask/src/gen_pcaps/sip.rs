//! SIP message text for the synthetic captures (RFC 3261 §7, §20): requests and responses of
//! a dialog with the headers a real user agent sends, optionally an SDP body (RFC 4566).
//!
//! Header values are bytes, so a fixture can put non-UTF-8 text in a display name. Variants a
//! fixture may need: compact header names (§7.3.3), lower-case names, bare-LF line endings.

use std::net::SocketAddr;

/// A SIP message under construction.
#[derive(Clone, Debug)]
pub struct Message {
    start_line: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    eol: &'static [u8],
    /// Name of the Content-Length header that `to_bytes` adds.
    length_name: &'static str,
}

impl Message {
    fn new(start_line: String) -> Message {
        Message {
            start_line,
            headers: Vec::new(),
            body: Vec::new(),
            eol: b"\r\n",
            length_name: "Content-Length",
        }
    }

    /// Appends a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Message {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: impl AsRef<[u8]>) -> Message {
        self.body = body.as_ref().to_vec();
        self.header("Content-Type", content_type)
    }

    /// Ends every line with a bare LF instead of CRLF (tolerated by RFC 3261 §7.5 parsers).
    pub fn lf_only(mut self) -> Message {
        self.eol = b"\n";
        self.body = crlf_to_lf(&self.body);
        self
    }

    /// Uses the compact form of every header that has one (§7.3.3), and lower-case names for
    /// the rest.
    pub fn compact(mut self) -> Message {
        for (name, _) in &mut self.headers {
            let short = match name.to_ascii_lowercase().as_str() {
                "call-id" => Some("i"),
                "contact" => Some("m"),
                "content-length" => Some("l"),
                "content-type" => Some("c"),
                "from" => Some("f"),
                "to" => Some("t"),
                "via" => Some("v"),
                "supported" => Some("k"),
                _ => None,
            };
            *name = short.map_or_else(|| name.to_ascii_lowercase(), str::to_owned);
        }
        self.length_name = "l";
        self
    }

    /// Writes every header name in lower case.
    pub fn lowercase_names(mut self) -> Message {
        for (name, _) in &mut self.headers {
            *name = name.to_ascii_lowercase();
        }
        self.length_name = "content-length";
        self
    }

    /// The message bytes; Content-Length is added unless a header already gives it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.start_line.as_bytes());
        out.extend_from_slice(self.eol);
        let has_length = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n == "l");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(self.eol);
        }
        if !has_length {
            let line = format!("{}: {}", self.length_name, self.body.len());
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(self.eol);
        }
        out.extend_from_slice(self.eol);
        out.extend_from_slice(&self.body);
        out
    }
}

fn crlf_to_lf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// One end of a dialog.
#[derive(Clone, Debug)]
pub struct Party {
    /// Display name bytes, quoted in From/To; empty for none.
    pub display: Vec<u8>,
    /// Address of record, e.g. `sip:alice@atlanta.example.com`.
    pub aor: String,
    /// Where the user agent sends from and listens.
    pub addr: SocketAddr,
}

impl Party {
    pub fn new(display: &str, aor: &str, addr: SocketAddr) -> Party {
        Party {
            display: display.as_bytes().to_vec(),
            aor: aor.to_owned(),
            addr,
        }
    }

    fn name_addr(&self, tag: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.display.is_empty() {
            out.push(b'"');
            out.extend_from_slice(&self.display);
            out.extend_from_slice(b"\" ");
        }
        out.extend_from_slice(format!("<{}>", self.aor).as_bytes());
        if let Some(tag) = tag {
            out.extend_from_slice(format!(";tag={tag}").as_bytes());
        }
        out
    }

    fn contact(&self) -> String {
        let user = self
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or_default();
        match self.addr {
            SocketAddr::V4(a) => format!("<sip:{user}@{}:{}>", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("<sip:{user}@[{}]:{}>", a.ip(), a.port()),
        }
    }

    fn via_host(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }
}

/// Direction of a request within the dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the caller (the From party of the dialog) to the callee.
    CallerToCallee,
    /// From the callee back to the caller (e.g. a BYE sent by the callee).
    CalleeToCaller,
}

/// A dialog between two parties with fixed identifiers.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub caller: Party,
    pub callee: Party,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: String,
    pub user_agent: &'static str,
}

impl Dialog {
    fn ends(&self, dir: Dir) -> (&Party, &Party) {
        match dir {
            Dir::CallerToCallee => (&self.caller, &self.callee),
            Dir::CalleeToCaller => (&self.callee, &self.caller),
        }
    }

    /// Source and destination of a request sent in `dir`.
    pub fn route(&self, dir: Dir) -> (SocketAddr, SocketAddr) {
        let (from, to) = self.ends(dir);
        (from.addr, to.addr)
    }

    /// Source and destination of the response to a request sent in `dir`.
    pub fn reply_route(&self, dir: Dir) -> (SocketAddr, SocketAddr) {
        let (from, to) = self.ends(dir);
        (to.addr, from.addr)
    }

    fn branch(&self, cseq: u32, method: &str) -> String {
        // Deterministic, unique per transaction within the capture.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.call_id.bytes().chain(method.bytes()) {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        format!("z9hG4bK{h:08x}.{cseq}")
    }

    /// From and To header values of a message in a transaction sent in `dir`; the remote tag
    /// is present once the dialog is established.
    fn tagged_ends(&self, dir: Dir, established: bool) -> (Vec<u8>, Vec<u8>) {
        let to_tag = established.then_some(self.to_tag.as_str());
        match dir {
            Dir::CallerToCallee => (
                self.caller.name_addr(Some(&self.from_tag)),
                self.callee.name_addr(to_tag),
            ),
            Dir::CalleeToCaller => (
                self.callee.name_addr(Some(&self.to_tag)),
                self.caller.name_addr(Some(&self.from_tag)),
            ),
        }
    }

    /// A request with the usual headers; `established` adds the To tag.
    pub fn request(&self, method: &str, cseq: u32, dir: Dir, established: bool) -> Message {
        let (sender, target) = self.ends(dir);
        let (from, to) = self.tagged_ends(dir, established);
        let uri = if method == "REGISTER" {
            registrar_uri(&target.aor)
        } else {
            target.aor.clone()
        };
        Message::new(format!("{method} {uri} SIP/2.0"))
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch={};rport",
                    sender.via_host(),
                    self.branch(cseq, method)
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{cseq} {method}"))
            .header("Contact", sender.contact())
            .header("User-Agent", self.user_agent)
    }

    /// The response to the request `method`/`cseq` sent in `dir`.
    pub fn response(
        &self,
        code: u16,
        reason: &str,
        method: &str,
        cseq: u32,
        dir: Dir,
        with_to_tag: bool,
    ) -> Message {
        let (sender, responder) = self.ends(dir);
        let (from, to) = self.tagged_ends(dir, with_to_tag);
        let message = Message::new(format!("SIP/2.0 {code} {reason}"))
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch={};rport={};received={}",
                    sender.via_host(),
                    self.branch(cseq, method),
                    sender.addr.port(),
                    sender.addr.ip()
                ),
            )
            .header("From", from)
            .header("To", to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{cseq} {method}"));
        if (200..300).contains(&code) && method != "REGISTER" {
            message.header("Contact", responder.contact())
        } else {
            message
        }
        .header("Server", self.user_agent)
    }
}

/// `sip:bob@biloxi.example.com` → `sip:biloxi.example.com`.
fn registrar_uri(aor: &str) -> String {
    match aor.split_once('@') {
        Some((_, domain)) => format!("sip:{domain}"),
        None => aor.to_owned(),
    }
}

/// An SDP offer or answer for one audio stream (RFC 4566, RFC 3264).
pub fn sdp(user: &str, session_id: u64, addr: SocketAddr, rtp_port: u16) -> String {
    let (net, ip) = match addr {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    format!(
        "v=0\r\n\
         o={user} {session_id} {session_id} IN {net} {ip}\r\n\
         s=-\r\n\
         c=IN {net} {ip}\r\n\
         t=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            caller: Party::new(
                "Alice",
                "sip:alice@a.example",
                "192.0.2.1:5060".parse().unwrap(),
            ),
            callee: Party::new("", "sip:bob@b.example", "192.0.2.2:5060".parse().unwrap()),
            call_id: "c1@a.example".into(),
            from_tag: "f1".into(),
            to_tag: "t1".into(),
            user_agent: "test",
        }
    }

    #[test]
    fn request_has_content_length_and_blank_line() {
        let text = dialog()
            .request("INVITE", 1, Dir::CallerToCallee, false)
            .body("application/sdp", "v=0\r\n")
            .to_bytes();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("INVITE sip:bob@b.example SIP/2.0\r\n"));
        assert!(text.contains("\r\nCall-ID: c1@a.example\r\n"));
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
    }

    #[test]
    fn compact_and_lf_only() {
        let text = dialog()
            .response(200, "OK", "BYE", 2, Dir::CalleeToCaller, true)
            .compact()
            .lf_only()
            .to_bytes();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains('\r'));
        assert!(text.contains("\ni: c1@a.example\n"));
        assert!(text.contains("\ncseq: 2 BYE\n"));
    }
}
