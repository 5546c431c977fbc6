//! Socket set-up that io_uring does not do for us.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a plain int option on our socket.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(drop)
}

/// A listening socket with SO_REUSEPORT, so that every shard can have its own on the
/// same address and the kernel spreads connections between them.
/// Whether another socket already listens on `addr` (from the kernel's socket tables,
/// /proc/net/tcp and tcp6). Start-up checks this before binding the shards'
/// SO_REUSEPORT listeners, which would otherwise silently join another process's group
/// on the same port (two servers behind one address). A bind probe cannot tell: the
/// connections a killed server left behind carry SO_REUSEPORT too and make a plain bind
/// fail, though a restart must succeed. Unreadable tables answer false.
pub fn listening_elsewhere(addr: SocketAddr) -> bool {
    let (file, want_ip): (&str, Option<[u8; 4]>) = match addr {
        SocketAddr::V4(a) => ("/proc/net/tcp", Some(a.ip().octets())),
        SocketAddr::V6(_) => ("/proc/net/tcp6", None),
    };
    let Ok(text) = std::fs::read_to_string(file) else { return false };
    text.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(state)) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let Some((ip, port)) = local.split_once(':') else { return false };
        if state != "0A" || u16::from_str_radix(port, 16).ok() != Some(addr.port()) {
            return false;
        }
        match want_ip {
            // The table prints an IPv4 address as a little-endian hex word.
            Some(want) => match u32::from_str_radix(ip, 16) {
                Ok(word) => {
                    let theirs = word.to_le_bytes();
                    theirs == want || theirs == [0; 4] || want == [0; 4]
                }
                Err(_) => false,
            },
            None => true,
        }
    })
}

pub fn listen_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    listen(addr, backlog, true)
}

/// A listening socket of one shard alone (`core-ports`): no SO_REUSEPORT group.
pub fn listen_single(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    listen(addr, backlog, false)
}

fn listen(addr: SocketAddr, backlog: i32, reuseport: bool) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket() returns a new fd or -1.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh socket we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuseport {
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if addr.is_ipv6() {
        setopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a valid sockaddr of `len` bytes.
    check(unsafe { libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) })?;
    // SAFETY: bound socket.
    check(unsafe { libc::listen(fd, backlog) })?;
    Ok(owned)
}

/// `unixsocket`: a listening Unix socket at `path` (a stale file there is removed first,
/// as Redis does), with mode `perm` when it is not 0.
pub fn listen_unix(path: &str, perm: u32, backlog: i32) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)?;
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm))?;
    }
    let fd = OwnedFd::from(l);
    // SAFETY: a bound socket we own; listen again only sets the backlog.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; we fill the variant that fits.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (storage, std::mem::size_of::<libc::sockaddr_in>() as u32)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (storage, std::mem::size_of::<libc::sockaddr_in6>() as u32)
        }
    }
}

fn decode(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says it is a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: family says it is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

fn name_of(fd: RawFd, peer: bool) -> String {
    // SAFETY: getpeername/getsockname fill at most `len` bytes of storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = &mut storage as *mut _ as *mut libc::sockaddr;
    let r = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    if r != 0 {
        return "?:0".into();
    }
    if storage.ss_family as i32 == libc::AF_UNIX {
        // As Redis names a Unix socket client: the socket's path (an accepted
        // connection's peer has none: its local side has it), then ":0".
        let path = unix_path(&storage, len);
        if path.is_empty() && peer {
            return name_of(fd, false);
        }
        return format!("{path}:0");
    }
    decode(&storage).map_or_else(|| "?:0".into(), |a| a.to_string())
}

/// The path in a Unix socket address of `len` bytes.
fn unix_path(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> String {
    // SAFETY: the caller saw the family AF_UNIX, so it is a sockaddr_un.
    let sun = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
    let n = (len as usize).saturating_sub(std::mem::size_of::<libc::sa_family_t>()).min(sun.sun_path.len());
    let path: Vec<u8> = sun.sun_path[..n].iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&path).into_owned()
}

pub fn peer_addr(fd: RawFd) -> String {
    name_of(fd, true)
}

pub fn local_addr(fd: RawFd) -> String {
    name_of(fd, false)
}

/// TCP_NODELAY and keepalive as `tcp-keepalive` asks (Redis's anetKeepAlive).
pub fn tune_client_socket(fd: RawFd, keepalive_secs: u64) {
    let _ = setopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    if keepalive_secs > 0 {
        let secs = keepalive_secs.min(i32::MAX as u64) as i32;
        let _ = setopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        let _ = setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs);
        let _ = setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 3).max(1));
        let _ = setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    }
}

/// Writes what it can without blocking; used for last words before closing.
pub fn write_all_nonblocking(fd: RawFd, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: writing from a valid slice to our socket.
        let n = unsafe {
            libc::send(fd, b.as_ptr() as *const libc::c_void, b.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

/// Sends `msg` and closes: for connections refused at accept.
pub fn refuse(fd: RawFd, msg: &[u8]) {
    write_all_nonblocking(fd, msg);
    // SAFETY: the fd was just accepted and is owned here.
    unsafe { libc::close(fd) };
}
