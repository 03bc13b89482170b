//! Prints, for every frame of a capture, the innermost IP five-tuple hepcap's decoder reached
//! (after tunnels and defragmentation), or why it stopped: the debugging view used to check
//! the tunnel decoders against tshark on captures that carry no SIP.
//!
//! ```text
//! cargo run -p hepcap --example decode_tuples -- FILE
//! ```
//!
//! One line per frame: `frame<TAB>src<TAB>dst<TAB>protocol<TAB>src_port<TAB>dst_port`, with
//! empty fields when no IP layer was reached (the skip reason is printed instead).

use std::io::Write;

use hepcap::decode::{Decoder, DecoderConfig};
use hepcap::source::CaptureFile;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: decode_tuples FILE"))?;
    let mut file = CaptureFile::open(std::path::Path::new(&path))?;
    let link = file.link_type();
    let mut decoder = Decoder::new(DecoderConfig::default());
    decoder.set_trace(true);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0u64;
    while let Some(frame) = file.next_frame() {
        let frame = frame?;
        n += 1;
        let result = decoder.decode(link, frame.ts, frame.data, &mut |_, _| {});
        match decoder.take_trace().last() {
            Some(t) => writeln!(
                out,
                "{n}\t{}\t{}\t{}\t{}\t{}",
                t.src, t.dst, t.protocol, t.src_port, t.dst_port
            )?,
            None => {
                let why = result.err().map_or("", |r| r.as_str());
                writeln!(out, "{n}\t\t\t\t\t\t{why}")?;
            }
        }
    }
    Ok(())
}
