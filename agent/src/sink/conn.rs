//! The byte stream under a stream HEP sink: plain TCP, or TLS over TCP (rustls).

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// How a stream sink wraps its TCP connections.
#[derive(Clone, Debug)]
pub(super) enum Wrap {
    Plain,
    Tls {
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    },
}

/// One open connection.
#[derive(Debug)]
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Wrap {
    /// Wraps a connected socket; for TLS the handshake completes here, so a collector that
    /// refuses our certificate checks fails the connect, not a later write.
    pub(super) fn wrap(&self, stream: TcpStream) -> io::Result<Conn> {
        match self {
            Wrap::Plain => Ok(Conn::Plain(stream)),
            Wrap::Tls {
                config,
                server_name,
            } => {
                let conn = ClientConnection::new(Arc::clone(config), server_name.clone())
                    .map_err(io::Error::other)?;
                let mut tls = StreamOwned::new(conn, stream);
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock)?;
                }
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }
}

impl Conn {
    /// True when the collector has shut its side down (a non-blocking peek reads end of
    /// stream). Writing on would put bytes into a socket the collector is closing: the caller
    /// reconnects instead. Data waiting (a TLS ticket, anything a collector says) is not EOF.
    pub(super) fn peer_closed(&self) -> bool {
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(sock)
                .recv_with_flags(&mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT),
            Ok(0)
        )
    }

    /// Bytes written on this connection that the peer's TCP has not acknowledged yet
    /// (`SIOCOUTQ`: sent but unacknowledged plus not yet sent). Linux answers this after a
    /// reset too, from the sequence numbers the socket keeps. Only plain TCP: under TLS the
    /// kernel counts ciphertext, which does not map back onto our packets (`None`).
    pub(super) fn unacked_bytes(&self) -> Option<u64> {
        let Conn::Plain(s) = self else { return None };
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer, which points at
        // a live local; the descriptor is owned by `s` for the duration of the call.
        let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
        (rc == 0).then(|| u64::try_from(n).unwrap_or(0))
    }

    /// A pending socket error (`SO_ERROR`), such as the reset of a collector that went away.
    pub(super) fn take_error(&self) -> Option<io::Error> {
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        };
        sock.take_error().ok().flatten()
    }

    /// Ends the stream after what was written: TLS close_notify, then FIN.
    pub(super) fn close(&mut self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Conn::Tls(t) => {
                t.conn.send_close_notify();
                let _ = t.flush();
                let _ = t.sock.shutdown(Shutdown::Write);
            }
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => {
                let n = t.write(buf)?;
                // Push the TLS records out now: a batch must not sit in rustls's buffer.
                t.flush()?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}
