//! Call correlation: RTCP tied to the SIP call whose SDP announced its addresses.
//!
//! [`sdp`] finds media endpoints in SIP bodies, [`rtcp`] decodes RTCP compound packets,
//! [`calls`] keeps the address/SSRC → Call-ID tables, [`Correlator`] is the stage replay and
//! live capture feed, and [`dedup`] drops the same datagram seen twice.
pub mod rtcp;
pub mod sdp;
