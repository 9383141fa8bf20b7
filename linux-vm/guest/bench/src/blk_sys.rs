//! The Linux arm64 system calls of the block benchmark: opening a block device for
//! direct I/O, its size, positioned reads and writes, flushing, anonymous memory, and
//! Linux native AIO (`io_setup`/`io_submit`/`io_getevents`) for requests kept in
//! flight without libaio.

use core::ffi::CStr;

use crate::linux::{syscall, Errno, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE};

const SYS_IO_SETUP: u64 = 0;
const SYS_IO_DESTROY: u64 = 1;
const SYS_IO_SUBMIT: u64 = 2;
const SYS_IO_GETEVENTS: u64 = 4;
const SYS_IOCTL: u64 = 29;
const SYS_OPENAT: u64 = 56;
const SYS_CLOSE: u64 = 57;
const SYS_PREAD64: u64 = 67;
const SYS_PWRITE64: u64 = 68;
const SYS_FDATASYNC: u64 = 83;
const SYS_MMAP: u64 = 222;

/// `openat`'s "relative to the working directory".
const AT_FDCWD: i64 = -100;
/// Bypass the page cache (arm64's value; x86's is 0o40000).
pub const O_DIRECT: u64 = 0o200_000;
/// `mmap`: private, not backed by a file.
const MAP_PRIVATE: u64 = 0x02;
const MAP_ANONYMOUS: u64 = 0x20;
/// `BLKGETSIZE64`: `_IOR(0x12, 114, size_t)`, the device's size in bytes.
const BLKGETSIZE64: u64 = 0x8008_1272;

/// AIO opcodes.
const IOCB_CMD_PREAD: u16 = 0;

/// Opens block device `path` for direct reads and writes.
pub fn open_direct(path: &CStr) -> Result<u64, Errno> {
    // SAFETY: openat reads the NUL-terminated path (guaranteed by `CStr`) and writes no
    // user memory.
    unsafe {
        syscall(
            SYS_OPENAT,
            [
                AT_FDCWD as u64,
                path.as_ptr() as u64,
                O_RDWR | O_DIRECT | O_CLOEXEC,
                0,
                0,
                0,
            ],
        )
    }
}

/// Closes `fd`.
pub fn close(fd: u64) -> Result<(), Errno> {
    // SAFETY: close touches no user memory.
    unsafe { syscall(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]) }.map(|_| ())
}

/// The size of block device `fd` in bytes.
pub fn device_bytes(fd: u64) -> Result<u64, Errno> {
    let mut size = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 to the pointer, which is a live local.
    unsafe { syscall(SYS_IOCTL, [fd, BLKGETSIZE64, &mut size as *mut u64 as u64, 0, 0, 0]) }?;
    Ok(size)
}

/// Reads into `buf` from byte `offset` of `fd`; returns the bytes read.
pub fn pread(fd: u64, buf: &mut [u8], offset: u64) -> Result<u64, Errno> {
    // SAFETY: pread writes at most `buf.len()` bytes into the exclusively borrowed slice.
    unsafe {
        syscall(
            SYS_PREAD64,
            [fd, buf.as_mut_ptr() as u64, buf.len() as u64, offset, 0, 0],
        )
    }
}

/// Writes `buf` at byte `offset` of `fd`; returns the bytes written.
pub fn pwrite(fd: u64, buf: &[u8], offset: u64) -> Result<u64, Errno> {
    // SAFETY: pwrite only reads the `buf.len()` bytes of the slice.
    unsafe { syscall(SYS_PWRITE64, [fd, buf.as_ptr() as u64, buf.len() as u64, offset, 0, 0]) }
}

/// Flushes `fd`'s written data to the device (for a disk with a volatile write cache,
/// a cache flush).
pub fn fdatasync(fd: u64) -> Result<(), Errno> {
    // SAFETY: fdatasync touches no user memory.
    unsafe { syscall(SYS_FDATASYNC, [fd, 0, 0, 0, 0, 0]) }.map(|_| ())
}

/// `len` bytes of fresh zeroed, page-aligned memory for the rest of the process's life.
pub fn alloc(len: usize) -> Result<&'static mut [u8], Errno> {
    // SAFETY: with address 0 (no MAP_FIXED) the kernel picks unused addresses, so no
    // memory Rust code uses changes.
    let addr = unsafe {
        syscall(
            SYS_MMAP,
            [
                0,
                len as u64,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                u64::MAX,
                0,
            ],
        )
    }?;
    // SAFETY: the kernel just mapped `len` readable, writable, zeroed bytes at `addr`,
    // which nothing else refers to; the program never unmaps them, so handing out one
    // exclusive 'static reference is sound.
    Ok(unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) })
}

/// Linux's `struct iocb` (little-endian field order).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: i32,
    opcode: u16,
    reqprio: i16,
    fildes: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

/// Linux's `struct io_event`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct IoEvent {
    /// The request's `data` as submitted.
    pub data: u64,
    obj: u64,
    /// Bytes transferred, or a negative error number.
    pub res: i64,
    res2: i64,
}

/// The most requests one [`Aio`] context keeps in flight.
pub const AIO_MAX: usize = 32;

/// A Linux AIO context reading into slots of a buffer it owns (each slot holds one
/// request in flight; the buffer is `'static`, so it outlives every request).
pub struct Aio {
    ctx: u64,
    buffers: &'static mut [u8],
    slot_len: usize,
    busy: [bool; AIO_MAX],
}

impl Aio {
    /// A context with `buffers.len() / slot_len` slots (at most [`AIO_MAX`]) of
    /// `slot_len` bytes each.
    pub fn new(buffers: &'static mut [u8], slot_len: usize) -> Result<Aio, Errno> {
        if slot_len == 0 || buffers.len() < slot_len {
            return Err(Errno(22)); // EINVAL
        }
        let mut ctx = 0u64;
        // SAFETY: io_setup writes the new context's id to the pointer, a live local.
        unsafe { syscall(SYS_IO_SETUP, [AIO_MAX as u64, &mut ctx as *mut u64 as u64, 0, 0, 0, 0]) }?;
        Ok(Aio {
            ctx,
            buffers,
            slot_len,
            busy: [false; AIO_MAX],
        })
    }

    /// How many slots there are.
    pub fn slots(&self) -> usize {
        (self.buffers.len() / self.slot_len).min(AIO_MAX)
    }

    /// Submits a read of one slot's length at `offset` of `fd` into slot `slot`; its
    /// completion event carries `slot` as its data. An error if the slot does not
    /// exist or is busy.
    pub fn read(&mut self, fd: u64, slot: usize, offset: u64) -> Result<(), Errno> {
        if slot >= self.slots() || self.busy[slot] {
            return Err(Errno(16)); // EBUSY
        }
        let buf = &mut self.buffers[slot * self.slot_len..(slot + 1) * self.slot_len];
        let mut iocb = Iocb {
            data: slot as u64,
            opcode: IOCB_CMD_PREAD,
            fildes: fd as u32,
            buf: buf.as_mut_ptr() as u64,
            nbytes: buf.len() as u64,
            offset: offset as i64,
            ..Iocb::default()
        };
        let list = [&mut iocb as *mut Iocb];
        // SAFETY: io_submit copies the one iocb the array points at (both live locals)
        // before returning; the kernel later writes up to `nbytes` into the slot, which
        // lies in the 'static buffer this context owns and is marked busy (no Rust
        // reference to it is handed out) until its event comes back.
        let n = unsafe { syscall(SYS_IO_SUBMIT, [self.ctx, 1, list.as_ptr() as u64, 0, 0, 0]) }?;
        if n != 1 {
            return Err(Errno(11)); // EAGAIN
        }
        self.busy[slot] = true;
        Ok(())
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.busy.iter().filter(|&&b| b).count()
    }

    /// Waits for at least one request to complete and puts up to `events.len()`
    /// completions into `events` (their slots are free again); returns how many.
    pub fn wait(&mut self, events: &mut [IoEvent]) -> Result<usize, Errno> {
        let max = events.len().min(self.in_flight()) as u64;
        if max == 0 {
            return Ok(0);
        }
        // SAFETY: io_getevents writes at most `max` events into the exclusively
        // borrowed slice; a null timeout waits.
        let n = unsafe { syscall(SYS_IO_GETEVENTS, [self.ctx, 1, max, events.as_mut_ptr() as u64, 0, 0]) }?;
        let n = (n as usize).min(events.len());
        for e in &events[..n] {
            if let Some(b) = usize::try_from(e.data).ok().and_then(|s| self.busy.get_mut(s)) {
                *b = false;
            }
        }
        Ok(n)
    }
}

impl Drop for Aio {
    fn drop(&mut self) {
        // SAFETY: io_destroy waits for the requests in flight; they write only into
        // this context's 'static buffer.
        let _ = unsafe { syscall(SYS_IO_DESTROY, [self.ctx, 0, 0, 0, 0, 0]) };
    }
}
