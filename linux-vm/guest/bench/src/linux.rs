//! The Linux arm64 interface the benchmark needs, without libc: raw system calls
//! (`svc #0`, x8 = number, x0..x5 = arguments, x0 = result or -errno) and the initial
//! process stack (argc, argv, envp, auxv) `_start` is entered with.

use core::arch::asm;
use core::ffi::CStr;

const SYS_OPENAT: u64 = 56;
const SYS_CLOSE: u64 = 57;
const SYS_PIPE2: u64 = 59;
const SYS_READ: u64 = 63;
const SYS_WRITE: u64 = 64;
const SYS_EXIT_GROUP: u64 = 94;
const SYS_CLONE: u64 = 220;
const SYS_MMAP: u64 = 222;
const SYS_WAIT4: u64 = 260;
/// The signal a `fork`ed child sends its parent when it exits.
const SIGCHLD: u64 = 17;

/// `openat`'s "relative to the working directory".
const AT_FDCWD: i64 = -100;
/// `open` flags (arm64 values).
pub const O_RDWR: u64 = 0o2;
/// Synchronous I/O; for /dev/mem also "map uncached" on architectures that need asking.
pub const O_SYNC: u64 = 0o4_010_000;
/// Close on exec.
pub const O_CLOEXEC: u64 = 0o2_000_000;
/// `mmap` protections and flags.
pub const PROT_READ: u64 = 1;
/// Writable mapping.
pub const PROT_WRITE: u64 = 2;
/// Shared mapping (of the device's physical pages themselves).
pub const MAP_SHARED: u64 = 1;

/// Auxiliary vector entry types.
const AT_NULL: u64 = 0;
const AT_PAGESZ: u64 = 6;

/// A failed system call's error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

/// Performs system call `n` with up to six arguments.
///
/// # Safety
/// The call must not invalidate memory Rust code uses (no `munmap` of live data, no
/// writes into Rust objects other than through pointers handed to it for that).
pub(crate) unsafe fn syscall(n: u64, args: [u64; 6]) -> Result<u64, Errno> {
    let ret: i64;
    // SAFETY: `svc #0` enters the Linux kernel, which preserves every register but x0
    // (the result) and reads only the memory the arguments name; the caller vouches
    // for that memory and for the call's effects.
    unsafe {
        asm!(
            "svc #0",
            in("x8") n,
            inlateout("x0") args[0] => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            options(nostack),
        );
    }
    // -4095..=-1 are error numbers; anything else is a result.
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret))
    } else {
        Ok(ret as u64)
    }
}

/// Opens `path` with `flags`; returns the file descriptor.
pub fn open(path: &CStr, flags: u64) -> Result<u64, Errno> {
    // SAFETY: openat reads the NUL-terminated path, which `CStr` guarantees, and
    // writes no user memory.
    unsafe { syscall(SYS_OPENAT, [AT_FDCWD as u64, path.as_ptr() as u64, flags, 0, 0, 0]) }
}

/// Maps `len` bytes of file `fd` from `offset` at an address the kernel chooses;
/// returns that address.
pub fn mmap(len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> Result<u64, Errno> {
    // SAFETY: with address 0 (no MAP_FIXED) the kernel picks unused addresses, so no
    // memory Rust code uses changes.
    unsafe { syscall(SYS_MMAP, [0, len, prot, flags, fd, offset]) }
}

/// A pipe: (read end, write end).
pub fn pipe() -> Result<(u64, u64), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two `int`s to the array it is given, which is ours.
    unsafe { syscall(SYS_PIPE2, [fds.as_mut_ptr() as u64, O_CLOEXEC, 0, 0, 0, 0]) }?;
    Ok((fds[0] as u64, fds[1] as u64))
}

/// Closes file descriptor `fd`.
pub fn close(fd: u64) -> Result<u64, Errno> {
    // SAFETY: close touches no user memory.
    unsafe { syscall(SYS_CLOSE, [fd, 0, 0, 0, 0, 0]) }
}

/// Reads up to `buf.len()` bytes from `fd`; returns how many (0 at end of file).
pub fn read(fd: u64, buf: &mut [u8]) -> Result<u64, Errno> {
    // SAFETY: read writes at most `buf.len()` bytes into the slice.
    unsafe { syscall(SYS_READ, [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0]) }
}

/// Forks: 0 in the child, the child's process id in the parent.
pub fn fork() -> Result<u64, Errno> {
    // SAFETY: clone without CLONE_VM gives the child its own copy of the address space
    // (copy-on-write), so neither process can change memory the other's Rust code uses;
    // the child continues from here on its copy of this stack.
    unsafe { syscall(SYS_CLONE, [SIGCHLD, 0, 0, 0, 0, 0]) }
}

/// Waits for child `pid` to end; returns its raw wait status.
pub fn wait(pid: u64) -> Result<u32, Errno> {
    let mut status = 0u32;
    // SAFETY: wait4 writes the status `int` to the variable it is given, which is ours.
    unsafe { syscall(SYS_WAIT4, [pid, &mut status as *mut u32 as u64, 0, 0, 0, 0]) }?;
    Ok(status)
}

/// Writes all of `bytes` to file descriptor `fd` (retrying short writes).
pub fn write_all(fd: u64, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        // SAFETY: write only reads the `bytes.len()` bytes of the slice.
        let n = unsafe { syscall(SYS_WRITE, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0]) }?;
        if n == 0 {
            return Err(Errno(0));
        }
        bytes = &bytes[(n as usize).min(bytes.len())..];
    }
    Ok(())
}

/// Ends the process with `code`.
pub fn exit(code: u8) -> ! {
    loop {
        // SAFETY: exit_group ends every thread of the process; no memory is touched.
        let _ = unsafe { syscall(SYS_EXIT_GROUP, [u64::from(code), 0, 0, 0, 0, 0]) };
    }
}

/// The most command-line arguments [`StartInfo::args`] keeps (`argv[0]` included).
pub const MAX_ARGS: usize = 16;

/// What the initial process stack says.
pub struct StartInfo {
    /// `argv[1]`, if given.
    pub first_arg: Option<&'static [u8]>,
    /// `argv[0..]`, the first [`MAX_ARGS`] of them.
    pub args: [&'static CStr; MAX_ARGS],
    /// How many of `args` there are.
    pub arg_count: usize,
    /// The kernel's page size (`AT_PAGESZ`; 4096 if absent).
    pub page_size: u64,
}

/// Reads the initial process stack at `sp`.
///
/// # Safety
/// `sp` must be the stack pointer Linux entered `_start` with, and nothing may have
/// written that part of the stack yet.
pub unsafe fn start_info(sp: *const u64) -> StartInfo {
    // SAFETY: Linux's ELF loader puts at `sp`: argc, argc argument pointers and a null
    // one, the environment pointers ending with a null one, then (type, value) auxiliary
    // vector pairs ending with AT_NULL; each argument is a NUL-terminated string. All of
    // it stays mapped and unchanged for the life of the process (the caller vouches that
    // no one has written it), so `'static` references into it are sound.
    unsafe {
        let argc = *sp as usize;
        let argv = sp.add(1);
        let first_arg = (argc >= 2).then(|| CStr::from_ptr(*argv.add(1) as *const core::ffi::c_char).to_bytes());
        let mut args = [c""; MAX_ARGS];
        let arg_count = argc.min(MAX_ARGS);
        for (i, arg) in args.iter_mut().enumerate().take(arg_count) {
            *arg = CStr::from_ptr(*argv.add(i) as *const core::ffi::c_char);
        }
        let mut p = argv.add(argc + 1); // envp
        while *p != 0 {
            p = p.add(1);
        }
        p = p.add(1); // auxv
        let mut page_size = 4096;
        while *p != AT_NULL {
            if *p == AT_PAGESZ {
                page_size = *p.add(1);
            }
            p = p.add(2);
        }
        StartInfo {
            first_arg,
            args,
            arg_count,
            page_size,
        }
    }
}
