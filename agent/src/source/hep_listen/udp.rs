//! The UDP listener: one thread, batched receive with `recvmmsg(2)`.
//!
//! A blocking socket with a short receive timeout lets the thread notice shutdown. The kernel's
//! own drop counter for the socket (`SO_RXQ_OVFL`, Linux 2.6.33) arrives as a control message
//! with each datagram and is exported as `kernel_drops`: datagrams lost before hepcap saw them
//! because the receive buffer was full.

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};

use super::intake::Intake;

/// Largest datagram received.
const MAX_DATAGRAM: usize = 65_535;
/// Room for one SO_RXQ_OVFL control message.
const CONTROL_LEN: usize = 64;

/// UDP listener settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Receive buffer asked of the kernel, bytes.
    pub rcvbuf: usize,
    /// Datagrams per `recvmmsg` call.
    pub batch: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            rcvbuf: 8 << 20,
            batch: 64,
        }
    }
}

/// Binds `addr` and starts the receive thread. Returns the bound address (port 0 resolved).
pub fn spawn_udp_listener(
    addr: SocketAddr,
    config: UdpConfig,
    intake: Arc<Intake>,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // No SO_REUSEADDR: on Linux it lets a second UDP socket bind the same port and take part
    // of the traffic; a port already taken must fail the start instead.
    set_rcvbuf(&socket, config.rcvbuf);
    set_int_opt(&socket, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    socket.bind(&addr.into())?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound socket has no inet address"))?;
    tracing::info!(
        listener = %intake.label(),
        address = %local,
        rcvbuf_requested = config.rcvbuf,
        rcvbuf_actual = socket.recv_buffer_size().unwrap_or(0),
        "hep udp listener bound"
    );
    let batch = config.batch.clamp(1, 1024);
    let thread = std::thread::Builder::new()
        .name("hepcap-hep-udp".into())
        .spawn(move || receive_loop(&socket, batch, &intake, &stop))?;
    Ok((local, thread))
}

/// Asks for `bytes` of receive buffer; as root, past `net.core.rmem_max` too.
fn set_rcvbuf(socket: &Socket, bytes: usize) {
    let _ = socket.set_recv_buffer_size(bytes);
    // The kernel reports double the usable size it granted.
    if socket.recv_buffer_size().unwrap_or(0) < bytes {
        let n = i32::try_from(bytes).unwrap_or(i32::MAX);
        let _ = set_int_opt(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, n);
    }
}

fn set_int_opt(socket: &Socket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live i32 for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn receive_loop(socket: &Socket, batch: usize, intake: &Intake, stop: &AtomicBool) {
    let stats = intake.stats();
    let mut buffers = vec![vec![0u8; MAX_DATAGRAM]; batch];
    let mut controls = vec![[0u8; CONTROL_LEN]; batch];
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; batch];
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(batch);
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(batch);

    while !stop.load(Ordering::Relaxed) {
        iovecs.clear();
        headers.clear();
        for buffer in buffers.iter_mut() {
            iovecs.push(libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            });
        }
        for i in 0..batch {
            // SAFETY: msghdr is plain old data; the fields that matter are set below.
            let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut iovecs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = controls[i].as_mut_ptr().cast();
            hdr.msg_controllen = CONTROL_LEN;
            headers.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        // SAFETY: `headers` holds `batch` entries whose pointers reference buffers, iovecs,
        // addresses and control areas that outlive the call and are not moved during it.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                batch as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {
                    continue;
                }
                _ => {
                    tracing::error!(listener = %intake.label(), error = %err, "recvmmsg failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        for (i, h) in headers.iter().take(n as usize).enumerate() {
            let len = (h.msg_len as usize).min(MAX_DATAGRAM);
            if let Some(drops) = rxq_overflow(&h.msg_hdr) {
                stats.set_kernel_drops(u64::from(drops));
            }
            let Some(peer) = sockaddr_to_std(&addrs[i]) else {
                continue;
            };
            intake.accept(peer, Bytes::copy_from_slice(&buffers[i][..len]));
        }
    }
}

/// The SO_RXQ_OVFL counter carried in a received message's control data, if any.
fn rxq_overflow(hdr: &libc::msghdr) -> Option<u32> {
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, bounded by
    // msg_controllen; each header is checked before its data is read.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_RXQ_OVFL {
                let data = libc::CMSG_DATA(cmsg).cast::<u32>();
                return Some(data.read_unaligned());
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large enough for.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it is large enough for.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(sin6.sin6_port),
            ))
        }
        _ => None,
    }
}
