//! The Linux arm64 system calls of the network benchmark: a TCP socket connected to an
//! IPv4 address or listening on a port, accepting a connection, `TCP_NODELAY`, reads,
//! and shutting down the sending half.

use crate::linux::{syscall, Errno, O_CLOEXEC};

const SYS_READ: u64 = 63;
const SYS_SOCKET: u64 = 198;
const SYS_BIND: u64 = 200;
const SYS_LISTEN: u64 = 201;
const SYS_ACCEPT: u64 = 202;
const SYS_CONNECT: u64 = 203;
const SYS_SETSOCKOPT: u64 = 208;
const SYS_SHUTDOWN: u64 = 210;

const AF_INET: u16 = 2;
const SOCK_STREAM: u64 = 1;
const IPPROTO_TCP: u64 = 6;
const TCP_NODELAY: u64 = 1;
const SOL_SOCKET: u64 = 1;
const SO_REUSEADDR: u64 = 2;
/// `shutdown`: no more sends.
const SHUT_WR: u64 = 1;

/// Linux's `struct sockaddr_in` (port and address in network byte order).
#[repr(C)]
struct SockaddrIn {
    family: u16,
    port_be: u16,
    addr: [u8; 4],
    zero: [u8; 8],
}

/// A TCP socket connected to `addr:port`; returns its file descriptor.
pub fn tcp_connect(addr: [u8; 4], port: u16) -> Result<u64, Errno> {
    // SAFETY: socket touches no user memory.
    let fd = unsafe {
        syscall(
            SYS_SOCKET,
            [u64::from(AF_INET), SOCK_STREAM | O_CLOEXEC, IPPROTO_TCP, 0, 0, 0],
        )
    }?;
    let sa = SockaddrIn {
        family: AF_INET,
        port_be: port.to_be(),
        addr,
        zero: [0; 8],
    };
    let len = core::mem::size_of::<SockaddrIn>() as u64;
    // SAFETY: connect reads `len` bytes of the live local `sa`, a `sockaddr_in`.
    unsafe { syscall(SYS_CONNECT, [fd, &sa as *const SockaddrIn as u64, len, 0, 0, 0]) }?;
    Ok(fd)
}

/// A TCP socket listening on `port` of every local IPv4 address (`SO_REUSEADDR`, a
/// backlog of 1); returns its file descriptor.
pub fn tcp_listen(port: u16) -> Result<u64, Errno> {
    // SAFETY: socket touches no user memory.
    let fd = unsafe {
        syscall(
            SYS_SOCKET,
            [u64::from(AF_INET), SOCK_STREAM | O_CLOEXEC, IPPROTO_TCP, 0, 0, 0],
        )
    }?;
    let one: u32 = 1;
    // SAFETY: setsockopt reads 4 bytes of the live local `one`.
    unsafe {
        syscall(
            SYS_SETSOCKOPT,
            [fd, SOL_SOCKET, SO_REUSEADDR, &one as *const u32 as u64, 4, 0],
        )
    }?;
    let sa = SockaddrIn {
        family: AF_INET,
        port_be: port.to_be(),
        addr: [0; 4],
        zero: [0; 8],
    };
    let len = core::mem::size_of::<SockaddrIn>() as u64;
    // SAFETY: bind reads `len` bytes of the live local `sa`, a `sockaddr_in`.
    unsafe { syscall(SYS_BIND, [fd, &sa as *const SockaddrIn as u64, len, 0, 0, 0]) }?;
    // SAFETY: listen touches no user memory.
    unsafe { syscall(SYS_LISTEN, [fd, 1, 0, 0, 0, 0]) }?;
    Ok(fd)
}

/// Waits for a connection on listening socket `fd`; returns the connection's descriptor.
pub fn accept(fd: u64) -> Result<u64, Errno> {
    // SAFETY: with null address pointers accept writes no user memory.
    unsafe { syscall(SYS_ACCEPT, [fd, 0, 0, 0, 0, 0]) }
}

/// Sets `TCP_NODELAY` on socket `fd` (small writes leave at once).
pub fn set_nodelay(fd: u64) -> Result<(), Errno> {
    let one: u32 = 1;
    // SAFETY: setsockopt reads 4 bytes of the live local `one`.
    unsafe {
        syscall(
            SYS_SETSOCKOPT,
            [fd, IPPROTO_TCP, TCP_NODELAY, &one as *const u32 as u64, 4, 0],
        )
    }
    .map(|_| ())
}

/// Reads into `buf` from `fd`; returns the bytes read (0 at end of stream).
pub fn read(fd: u64, buf: &mut [u8]) -> Result<u64, Errno> {
    // SAFETY: read writes at most `buf.len()` bytes into the exclusively borrowed slice.
    unsafe { syscall(SYS_READ, [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0]) }
}

/// Shuts down the sending half of socket `fd` (the peer reads end of stream).
pub fn shutdown_write(fd: u64) -> Result<(), Errno> {
    // SAFETY: shutdown touches no user memory.
    unsafe { syscall(SYS_SHUTDOWN, [fd, SHUT_WR, 0, 0, 0, 0]) }.map(|_| ())
}
