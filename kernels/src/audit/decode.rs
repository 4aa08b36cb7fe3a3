//! Decoding of syscall arguments read from a tracee: socket addresses (`struct sockaddr_in`,
//! `sockaddr_in6`, `sockaddr_un`, `sockaddr_nl` of ip(7), ipv6(7), unix(7), netlink(7)), the loopback
//! rule of the network policy, and lexical path handling for the file policy.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `AF_UNSPEC`, `AF_UNIX`, `AF_INET`, `AF_INET6`, `AF_NETLINK` (linux/socket.h).
pub(crate) const AF_UNSPEC: u16 = 0;
pub(crate) const AF_UNIX: u16 = 1;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const AF_NETLINK: u16 = 16;

/// A socket address as a syscall passed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "family")]
pub enum SockAddr {
    /// `AF_UNSPEC` (a `connect` that dissolves an association).
    #[serde(rename = "AF_UNSPEC")]
    Unspec,
    /// An IPv4 address and port.
    #[serde(rename = "AF_INET")]
    Inet {
        /// `a.b.c.d:port`.
        addr: SocketAddrV4,
    },
    /// An IPv6 address and port.
    #[serde(rename = "AF_INET6")]
    Inet6 {
        /// `[addr]:port`.
        addr: SocketAddrV6,
    },
    /// A Unix socket: a path, `@name` for the abstract namespace, or empty when unnamed.
    #[serde(rename = "AF_UNIX")]
    Unix {
        /// The path.
        path: String,
    },
    /// A netlink socket (the kernel or a local process).
    #[serde(rename = "AF_NETLINK")]
    Netlink,
    /// Another family, by number (`AF_PACKET` = 17, …), or a buffer too short for its family.
    #[serde(rename = "other")]
    Other {
        /// The `sa_family` value.
        code: u16,
    },
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Unspec => write!(f, "AF_UNSPEC"),
            SockAddr::Inet { addr } => write!(f, "{addr} (AF_INET)"),
            SockAddr::Inet6 { addr } => write!(f, "{addr} (AF_INET6)"),
            SockAddr::Unix { path } => write!(f, "{path:?} (AF_UNIX)"),
            SockAddr::Netlink => write!(f, "AF_NETLINK"),
            SockAddr::Other { code } => write!(f, "address family {code}"),
        }
    }
}

impl SockAddr {
    /// Decodes the bytes of a `struct sockaddr_*` (as many as the call's length argument gave).
    pub fn decode(bytes: &[u8]) -> SockAddr {
        if bytes.len() < 2 {
            return SockAddr::Other { code: 0 };
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        match family {
            AF_UNSPEC => SockAddr::Unspec,
            AF_INET if bytes.len() >= 8 => {
                let port = u16::from_be_bytes([bytes[2], bytes[3]]);
                let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
                SockAddr::Inet { addr: SocketAddrV4::new(ip, port) }
            }
            AF_INET6 if bytes.len() >= 24 => {
                let port = u16::from_be_bytes([bytes[2], bytes[3]]);
                let flow = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&bytes[8..24]);
                let scope = match bytes.get(24..28) {
                    Some(s) => u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
                    None => 0,
                };
                SockAddr::Inet6 { addr: SocketAddrV6::new(Ipv6Addr::from(octets), port, flow, scope) }
            }
            AF_UNIX => {
                let raw = &bytes[2..];
                let path = match raw.first() {
                    None => String::new(),
                    // The abstract namespace: a leading NUL, the name is the rest (NULs included).
                    Some(0) => format!("@{}", String::from_utf8_lossy(&raw[1..])),
                    Some(_) => {
                        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                        String::from_utf8_lossy(&raw[..end]).into_owned()
                    }
                };
                SockAddr::Unix { path }
            }
            AF_NETLINK => SockAddr::Netlink,
            code => SockAddr::Other { code },
        }
    }
}

/// The network policy's rule: loopback IPv4 (127.0.0.0/8), IPv6 `::1` or `::ffff:127.x.y.z`, Unix and
/// netlink sockets and `AF_UNSPEC` are local; everything else (including 0.0.0.0) is not.
pub fn is_local(addr: &SockAddr) -> bool {
    match addr {
        SockAddr::Unspec | SockAddr::Unix { .. } | SockAddr::Netlink => true,
        SockAddr::Inet { addr } => addr.ip().is_loopback(),
        SockAddr::Inet6 { addr } => {
            addr.ip().is_loopback() || addr.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        SockAddr::Other { .. } => false,
    }
}

/// `path` made absolute against `base` and lexically normal: `.` dropped, `..` pops a component
/// (never above `/`); symlinks are not resolved.
pub fn normalize_path(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// True when the absolute, normal `path` equals one of `prefixes` or lies under one (whole
/// components: `/usr` allows `/usr/lib` but not `/usrx`).
pub fn path_allowed(path: &Path, prefixes: &[PathBuf]) -> bool {
    prefixes.iter().any(|p| path.starts_with(normalize_path(Path::new("/"), p)))
}
