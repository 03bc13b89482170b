//! Capabilities: which ones a capture mode needs, whether this process has them, and giving
//! them all up once the programs are attached and the sockets open.
//!
//! After start-up nothing hepcap does needs a privilege: perf buffers are mapped, maps are
//! reached through descriptors it already holds, and attached programs stay attached while
//! those descriptors live. So every capability is dropped, from every set, and with `--user`
//! the process also becomes that user. (The bounding set is left as it is: with every other
//! set empty and `no_new_privs` set, nothing can be regained from it.)

use caps::{CapSet, Capability};

/// One capability and whether this process holds it in its effective set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub cap: Capability,
    pub held: bool,
}

/// What a mode needs. CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as on kernels
/// before 5.8.
pub fn needed(mode: &str) -> &'static [Capability] {
    match mode {
        "ebpf" => &[
            Capability::CAP_BPF,
            Capability::CAP_PERFMON,
            Capability::CAP_NET_RAW,
        ],
        "xdp" => &[
            Capability::CAP_BPF,
            Capability::CAP_PERFMON,
            Capability::CAP_NET_ADMIN,
        ],
        "pcap" => &[Capability::CAP_NET_RAW],
        _ => &[],
    }
}

fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

/// Every capability `mode` needs, held or not.
pub fn check(mode: &str) -> Vec<Held> {
    let admin = has(Capability::CAP_SYS_ADMIN);
    needed(mode)
        .iter()
        .map(|&cap| {
            let substitute = admin && matches!(cap, Capability::CAP_BPF | Capability::CAP_PERFMON);
            Held {
                cap,
                held: has(cap) || substitute,
            }
        })
        .collect()
}

/// The missing capabilities of `mode`, as a sentence, or `None` when all are held.
pub fn missing(mode: &str) -> Option<String> {
    let missing: Vec<String> = check(mode)
        .iter()
        .filter(|h| !h.held)
        .map(|h| h.cap.to_string())
        .collect();
    (!missing.is_empty()).then(|| {
        let them = if missing.len() == 1 { "it" } else { "them" };
        format!(
            "{mode} capture needs {} (run as root, or grant {them} with setcap)",
            missing.join(", ")
        )
    })
}

/// Why dropping privileges failed.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("switch to user {user:?}: {error}")]
    Switch { user: String, error: std::io::Error },
    #[error("drop capabilities: {0}")]
    Caps(String),
}

/// Becomes `user` (when given) and clears every capability set.
pub fn drop_all(user: Option<&str>) -> Result<(), DropError> {
    if let Some(name) = user {
        switch_user(name)?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| DropError::Caps(e.to_string()))?;
    }
    // Nothing regained through exec either.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}

fn switch_user(name: &str) -> Result<(), DropError> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| DropError::NoSuchUser(name.to_string()))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(DropError::NoSuchUser(name.to_string()));
    }
    // SAFETY: non-null passwd entry from getpwnam.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    let fail = |error| DropError::Switch {
        user: name.to_string(),
        error,
    };
    // Supplementary groups first (needs CAP_SETGID), then the group, then the user.
    // SAFETY: plain syscalls with integer arguments; the group list is one valid gid.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_name_their_capabilities() {
        assert_eq!(
            needed("xdp"),
            &[
                Capability::CAP_BPF,
                Capability::CAP_PERFMON,
                Capability::CAP_NET_ADMIN
            ]
        );
        assert_eq!(needed("pcap"), &[Capability::CAP_NET_RAW]);
        assert!(needed("none").is_empty());
        assert!(missing("none").is_none());
    }
}
