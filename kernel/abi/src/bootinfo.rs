//! The boot-information blob: what the builder tells the kernel about the system.
//!
//! The builder lays out physical memory, places every PD's program segments at their
//! physical addresses in the image, and writes one blob that the kernel reads at boot:
//!
//! ```text
//! Header | PdDesc × num_pds | MapDesc × num_maps | CapDesc × num_caps
//!        | IrqDesc × num_irqs | ZeroDesc × num_zero
//! ```
//!
//! All fields are little-endian and every record is a multiple of 8 bytes. The
//! kernel learns where the blob is from two `u64` symbols in its own ELF that the
//! builder patches: [`SYMBOL_PADDR`] and [`SYMBOL_SIZE`].
//!
//! Records are read by copy ([`zerocopy::FromBytes::read_from_prefix`]), so the blob
//! needs no particular alignment.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic number at the start of the blob ("vcposBI1").
pub const MAGIC: u64 = u64::from_le_bytes(*b"vcposBI1");
/// Format version.
pub const VERSION: u32 = 1;
/// Kernel symbol holding the blob's physical address.
pub const SYMBOL_PADDR: &str = "VCPOS_BOOT_INFO_PADDR";
/// Kernel symbol holding the blob's size in bytes.
pub const SYMBOL_SIZE: &str = "VCPOS_BOOT_INFO_SIZE";
/// [`PdDesc::parent`] of a root PD.
pub const NO_PARENT: u8 = 0xff;
/// [`PdDesc::kind`]: a protection domain (EL0 thread with its own address space).
pub const THREAD_PD: u8 = 0;
/// [`PdDesc::kind`]: a vCPU of a VM, run at EL1 behind stage-2 translation. Its maps
/// are guest-physical; it has no capabilities, stack or IPC buffer; its parent is the
/// VMM PD and `child_id` is the vCPU id. It starts stopped until the VMM restarts it.
pub const THREAD_VCPU: u8 = 1;

/// Blob header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// Number of [`PdDesc`] records.
    pub num_pds: u32,
    /// Number of [`MapDesc`] records.
    pub num_maps: u32,
    /// Number of [`CapDesc`] records.
    pub num_caps: u32,
    /// Number of [`IrqDesc`] records.
    pub num_irqs: u32,
    /// Number of [`ZeroDesc`] records.
    pub num_zero: u32,
    /// Physical address of the page-table pool (4 KiB aligned).
    pub pt_pool_paddr: u64,
    /// Size of the page-table pool in bytes.
    pub pt_pool_size: u64,
    /// Size of the whole blob in bytes.
    pub total_size: u64,
}

/// One protection domain.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PdDesc {
    /// Name, NUL padded.
    pub name: [u8; crate::PD_NAME_LEN],
    /// Entry point (virtual).
    pub entry: u64,
    /// Initial stack pointer (virtual), normally [`crate::vspace::STACK_TOP`].
    pub stack_top: u64,
    /// Physical address of the PD's IPC buffer page.
    pub ipc_buffer_paddr: u64,
    /// Budget in microseconds.
    pub budget_us: u64,
    /// Period in microseconds (>= budget).
    pub period_us: u64,
    /// Index of the PD's first map in the map table.
    pub maps_first: u32,
    /// Number of maps.
    pub maps_count: u32,
    /// Index of the PD's first capability in the cap table.
    pub caps_first: u32,
    /// Number of capabilities.
    pub caps_count: u32,
    /// Priority 0..=254.
    pub priority: u8,
    /// 1 if passive.
    pub passive: u8,
    /// Index of the parent PD, or [`NO_PARENT`].
    pub parent: u8,
    /// The id the parent uses for this child (valid when `parent != NO_PARENT`).
    pub child_id: u8,
    /// CPU core the PD runs on.
    pub cpu: u8,
    /// [`THREAD_PD`] or [`THREAD_VCPU`].
    pub kind: u8,
    /// Reserved, zero.
    pub reserved: [u8; 2],
}

impl PdDesc {
    /// The name as a string (up to the first NUL); invalid UTF-8 gives `"?"`.
    pub fn name_str(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    /// Encodes `name` (truncated to [`crate::PD_NAME_LEN`] bytes) into a name field.
    pub fn encode_name(name: &str) -> [u8; crate::PD_NAME_LEN] {
        let mut out = [0u8; crate::PD_NAME_LEN];
        let n = name.len().min(out.len());
        out[..n].copy_from_slice(&name.as_bytes()[..n]);
        out
    }
}

/// One mapping of physical memory into a PD's address space.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct MapDesc {
    /// Virtual address (page aligned).
    pub vaddr: u64,
    /// Physical address (page aligned).
    pub paddr: u64,
    /// Size in bytes (page multiple).
    pub size: u64,
    /// [`crate::vspace::attr`] bits.
    pub attrs: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// One capability in a PD's capability space.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CapDesc {
    /// Slot (cptr) in the owning PD's capability space.
    pub slot: u16,
    /// [`crate::cap::CapKind`] as a byte.
    pub kind: u8,
    /// Reserved, zero.
    pub reserved: u8,
    /// Target: a PD index (Notification, Endpoint, Tcb, Input) or an IRQ number
    /// (IrqHandler).
    pub object: u32,
    /// Badge delivered to the target (Notification, Endpoint).
    pub badge: u64,
}

/// One IRQ routed to a PD's notification.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct IrqDesc {
    /// GIC interrupt id (INTID; SPIs are 32 and up).
    pub irq: u32,
    /// Index of the PD that receives it.
    pub pd: u8,
    /// 0 = level, 1 = edge.
    pub trigger: u8,
    /// Reserved, zero.
    pub reserved: u16,
    /// Notification badge bits delivered when it fires.
    pub badge: u64,
}

/// A physical range the kernel zeroes at boot (memory regions, .bss tails).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ZeroDesc {
    /// Physical address.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// Shorter than its header or than the header says.
    Truncated,
    /// Wrong magic number.
    BadMagic,
    /// Unsupported version.
    BadVersion,
    /// A record refers outside its table (PD index, map or cap range).
    BadReference,
}

/// A parsed view of a blob.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'a> {
    /// The header.
    pub header: Header,
    bytes: &'a [u8],
}

const fn offsets(h: &Header) -> [usize; 6] {
    let pds = core::mem::size_of::<Header>();
    let maps = pds + h.num_pds as usize * core::mem::size_of::<PdDesc>();
    let caps = maps + h.num_maps as usize * core::mem::size_of::<MapDesc>();
    let irqs = caps + h.num_caps as usize * core::mem::size_of::<CapDesc>();
    let zero = irqs + h.num_irqs as usize * core::mem::size_of::<IrqDesc>();
    let end = zero + h.num_zero as usize * core::mem::size_of::<ZeroDesc>();
    [pds, maps, caps, irqs, zero, end]
}

fn read<T: FromBytes>(bytes: &[u8], offset: usize) -> T {
    // Offsets were checked against the length in `parse`.
    T::read_from_prefix(&bytes[offset..])
        .map(|(v, _)| v)
        .unwrap_or_else(|_| T::new_zeroed())
}

impl<'a> BootInfo<'a> {
    /// Parses and checks a blob: sizes, magic, version, and that every index stays
    /// inside its table.
    pub fn parse(bytes: &'a [u8]) -> Result<BootInfo<'a>, BootInfoError> {
        let (header, _) = Header::read_from_prefix(bytes).map_err(|_| BootInfoError::Truncated)?;
        if header.magic != MAGIC {
            return Err(BootInfoError::BadMagic);
        }
        if header.version != VERSION {
            return Err(BootInfoError::BadVersion);
        }
        if header.num_pds as usize > crate::MAX_PDS
            || header.num_maps > 1 << 20
            || header.num_caps > 1 << 20
            || header.num_irqs > 1 << 16
            || header.num_zero > 1 << 20
        {
            return Err(BootInfoError::BadReference);
        }
        let end = offsets(&header)[5];
        if bytes.len() < end || (header.total_size as usize) < end {
            return Err(BootInfoError::Truncated);
        }
        let info = BootInfo { header, bytes };
        for i in 0..info.num_pds() {
            let pd = info.pd(i);
            let maps_end = pd.maps_first as u64 + pd.maps_count as u64;
            let caps_end = pd.caps_first as u64 + pd.caps_count as u64;
            if maps_end > header.num_maps as u64
                || caps_end > header.num_caps as u64
                || (pd.parent != NO_PARENT && pd.parent as usize >= info.num_pds())
            {
                return Err(BootInfoError::BadReference);
            }
        }
        for i in 0..header.num_irqs as usize {
            if info.irq(i).pd as usize >= info.num_pds() {
                return Err(BootInfoError::BadReference);
            }
        }
        Ok(info)
    }

    /// Number of PDs.
    pub fn num_pds(&self) -> usize {
        self.header.num_pds as usize
    }

    /// PD `i` (`i < num_pds()`).
    pub fn pd(&self, i: usize) -> PdDesc {
        read(
            self.bytes,
            offsets(&self.header)[0] + i * core::mem::size_of::<PdDesc>(),
        )
    }

    /// Map `i` of the whole map table.
    pub fn map(&self, i: usize) -> MapDesc {
        read(
            self.bytes,
            offsets(&self.header)[1] + i * core::mem::size_of::<MapDesc>(),
        )
    }

    /// Cap `i` of the whole cap table.
    pub fn cap(&self, i: usize) -> CapDesc {
        read(
            self.bytes,
            offsets(&self.header)[2] + i * core::mem::size_of::<CapDesc>(),
        )
    }

    /// IRQ `i`.
    pub fn irq(&self, i: usize) -> IrqDesc {
        read(
            self.bytes,
            offsets(&self.header)[3] + i * core::mem::size_of::<IrqDesc>(),
        )
    }

    /// Zero range `i`.
    pub fn zero(&self, i: usize) -> ZeroDesc {
        read(
            self.bytes,
            offsets(&self.header)[4] + i * core::mem::size_of::<ZeroDesc>(),
        )
    }

    /// The maps of PD `pd`.
    pub fn pd_maps(&self, pd: &PdDesc) -> impl Iterator<Item = MapDesc> + '_ {
        (pd.maps_first as usize..(pd.maps_first + pd.maps_count) as usize).map(|i| self.map(i))
    }

    /// The capabilities of PD `pd`.
    pub fn pd_caps(&self, pd: &PdDesc) -> impl Iterator<Item = CapDesc> + '_ {
        (pd.caps_first as usize..(pd.caps_first + pd.caps_count) as usize).map(|i| self.cap(i))
    }
}

/// A physical range of memory the blob lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListedRange {
    /// Zero range `i`.
    Zero(usize),
    /// Map `map` (index in the whole map table) of PD `pd`.
    Map {
        /// PD index.
        pd: usize,
        /// Map index.
        map: usize,
    },
    /// The page-table pool.
    PageTablePool,
    /// The IPC buffer page of PD `i` (the kernel writes it during syscalls).
    IpcBuffer(usize),
}

/// Memory the blob's ranges must stay out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// The kernel image (text, data, bss and stack).
    KernelImage,
    /// The boot-information blob itself.
    BootInfo,
    /// The page-table pool (maps and zero ranges only).
    PageTablePool,
}

/// A listed range that overlaps reserved memory (or wraps around the address space).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeError {
    /// Which range.
    pub range: ListedRange,
    /// Its physical address.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// What it overlaps; `None` if it wraps around the end of the address space.
    pub overlaps: Option<(Reserved, u64, u64)>,
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.range {
            ListedRange::Zero(i) => write!(f, "zero range {i}")?,
            ListedRange::Map { pd, map } => write!(f, "map {map} (of PD {pd})")?,
            ListedRange::PageTablePool => write!(f, "the page-table pool")?,
            ListedRange::IpcBuffer(pd) => write!(f, "the IPC buffer of PD {pd}")?,
        }
        write!(f, " at {:#x}+{:#x} ", self.paddr, self.size)?;
        match self.overlaps {
            None => write!(f, "wraps around the address space"),
            Some((what, paddr, size)) => {
                let what = match what {
                    Reserved::KernelImage => "the kernel image",
                    Reserved::BootInfo => "the boot information",
                    Reserved::PageTablePool => "the page-table pool",
                };
                write!(f, "overlaps {what} at {paddr:#x}+{size:#x}")
            }
        }
    }
}

fn overlap(a: u64, a_size: u64, b: u64, b_size: u64) -> bool {
    a_size != 0 && b_size != 0 && a < b.saturating_add(b_size) && b < a.saturating_add(a_size)
}

impl BootInfo<'_> {
    /// Checks every physical range the blob lists (zero ranges, PD maps, PD IPC
    /// buffers, the page-table pool) against the kernel image (`kernel` = physical address and
    /// size) and the blob itself (`blob`), and the zero ranges and maps against the
    /// page-table pool: zeroing or mapping any of those would corrupt the kernel.
    /// Returns the first offending range.
    pub fn check_ranges(&self, kernel: (u64, u64), blob: (u64, u64)) -> Result<(), RangeError> {
        let pool = (self.header.pt_pool_paddr, self.header.pt_pool_size);
        let check = |range: ListedRange, paddr: u64, size: u64, with_pool: bool| {
            let err = |overlaps| {
                Err(RangeError {
                    range,
                    paddr,
                    size,
                    overlaps,
                })
            };
            if paddr.checked_add(size).is_none() {
                return err(None);
            }
            let mut reserved = [
                (Reserved::KernelImage, kernel),
                (Reserved::BootInfo, blob),
                (Reserved::PageTablePool, pool),
            ];
            let n = if with_pool { 3 } else { 2 };
            for (what, (r, r_size)) in &mut reserved[..n] {
                if overlap(paddr, size, *r, *r_size) {
                    return err(Some((*what, *r, *r_size)));
                }
            }
            Ok(())
        };
        check(ListedRange::PageTablePool, pool.0, pool.1, false)?;
        for i in 0..self.header.num_zero as usize {
            let z = self.zero(i);
            check(ListedRange::Zero(i), z.paddr, z.size, true)?;
        }
        for pd in 0..self.num_pds() {
            let d = self.pd(pd);
            if d.kind == THREAD_PD {
                check(ListedRange::IpcBuffer(pd), d.ipc_buffer_paddr, 4096, true)?;
            }
            for map in d.maps_first as usize..(d.maps_first + d.maps_count) as usize {
                let m = self.map(map);
                check(ListedRange::Map { pd, map }, m.paddr, m.size, true)?;
            }
        }
        Ok(())
    }
}

/// Serialises a blob (builder side; also used by host tests).
#[cfg(any(test, feature = "alloc"))]
pub fn write(
    pt_pool_paddr: u64,
    pt_pool_size: u64,
    pds: &[PdDesc],
    maps: &[MapDesc],
    caps: &[CapDesc],
    irqs: &[IrqDesc],
    zero: &[ZeroDesc],
) -> alloc::vec::Vec<u8> {
    let mut header = Header {
        magic: MAGIC,
        version: VERSION,
        num_pds: pds.len() as u32,
        num_maps: maps.len() as u32,
        num_caps: caps.len() as u32,
        num_irqs: irqs.len() as u32,
        num_zero: zero.len() as u32,
        pt_pool_paddr,
        pt_pool_size,
        total_size: 0,
    };
    header.total_size = offsets(&header)[5] as u64;
    let mut out = alloc::vec::Vec::with_capacity(header.total_size as usize);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(pds.as_bytes());
    out.extend_from_slice(maps.as_bytes());
    out.extend_from_slice(caps.as_bytes());
    out.extend_from_slice(irqs.as_bytes());
    out.extend_from_slice(zero.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn pd(name: &str, parent: u8) -> PdDesc {
        PdDesc {
            name: PdDesc::encode_name(name),
            entry: 0x20_0000,
            stack_top: crate::vspace::STACK_TOP,
            ipc_buffer_paddr: 0x4100_0000,
            budget_us: 1000,
            period_us: 1000,
            maps_first: 0,
            maps_count: 1,
            caps_first: 0,
            caps_count: 1,
            priority: 100,
            passive: 0,
            parent,
            child_id: 0,
            cpu: 0,
            kind: THREAD_PD,
            reserved: [0; 2],
        }
    }

    #[test]
    fn record_sizes_are_stable() {
        assert_eq!(core::mem::size_of::<Header>(), 56);
        assert_eq!(core::mem::size_of::<PdDesc>(), 128);
        assert_eq!(core::mem::size_of::<MapDesc>(), 32);
        assert_eq!(core::mem::size_of::<CapDesc>(), 16);
        assert_eq!(core::mem::size_of::<IrqDesc>(), 16);
        assert_eq!(core::mem::size_of::<ZeroDesc>(), 16);
    }

    #[test]
    fn round_trip() {
        let maps = [MapDesc {
            vaddr: 0x20_0000,
            paddr: 0x4100_0000,
            size: 0x1000,
            attrs: 5,
            reserved: 0,
        }];
        let caps = [CapDesc {
            slot: 10,
            kind: 2,
            reserved: 0,
            object: 1,
            badge: 1 << 3,
        }];
        let irqs = [IrqDesc {
            irq: 33,
            pd: 1,
            trigger: 0,
            reserved: 0,
            badge: 1,
        }];
        let zero = [ZeroDesc {
            paddr: 0x4200_0000,
            size: 0x1000,
        }];
        let blob = write(
            0x4400_0000,
            0x10000,
            &[pd("a", NO_PARENT), pd("b", 0)],
            &maps,
            &caps,
            &irqs,
            &zero,
        );
        // Parse from an odd offset to prove no alignment is needed.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&blob);
        let info = BootInfo::parse(&shifted[1..]).unwrap();
        assert_eq!(info.num_pds(), 2);
        assert_eq!(info.pd(1).name_str(), "b");
        assert_eq!(info.pd(1).parent, 0);
        assert_eq!(info.pd_maps(&info.pd(0)).collect::<Vec<_>>(), maps);
        assert_eq!(info.pd_caps(&info.pd(0)).collect::<Vec<_>>(), caps);
        assert_eq!(info.irq(0), irqs[0]);
        assert_eq!(info.zero(0), zero[0]);
        assert_eq!(info.header.pt_pool_paddr, 0x4400_0000);
    }

    #[test]
    fn ranges_overlapping_the_kernel_the_blob_or_the_page_tables_are_refused() {
        let kernel = (0x4008_0000, 0x10_0000);
        let blob_at = (0x4300_0000, 0x2000);
        let map = |paddr, size| MapDesc {
            vaddr: 0x20_0000,
            paddr,
            size,
            attrs: 1,
            reserved: 0,
        };
        let caps = [CapDesc::new_zeroed()];
        let check = |maps: &[MapDesc], zero: &[ZeroDesc], pool: (u64, u64)| {
            let blob = write(pool.0, pool.1, &[pd("a", NO_PARENT)], maps, &caps, &[], zero);
            BootInfo::parse(&blob).unwrap().check_ranges(kernel, blob_at)
        };
        let pool = (0x4400_0000, 0x1_0000);
        let good = [map(0x4100_0000, 0x1000)];
        let zero = [ZeroDesc {
            paddr: 0x4200_0000,
            size: 0x1000,
        }];
        assert_eq!(check(&good, &zero, pool), Ok(()));
        // A PD map over the last page of the kernel image.
        let e = check(&[map(0x4017_f000, 0x1000)], &zero, pool).unwrap_err();
        assert_eq!(e.range, ListedRange::Map { pd: 0, map: 0 });
        assert_eq!(e.overlaps, Some((Reserved::KernelImage, 0x4008_0000, 0x10_0000)));
        assert_eq!(
            e.to_string(),
            "map 0 (of PD 0) at 0x4017f000+0x1000 overlaps the kernel image at 0x40080000+0x100000"
        );
        // A zero range over the blob; a map over the page-table pool.
        let e = check(
            &good,
            &[ZeroDesc {
                paddr: 0x4300_1000,
                size: 0x8000,
            }],
            pool,
        )
        .unwrap_err();
        assert_eq!(
            (e.range, e.overlaps.map(|o| o.0)),
            (ListedRange::Zero(0), Some(Reserved::BootInfo))
        );
        let e = check(&[map(0x4400_f000, 0x1000)], &zero, pool).unwrap_err();
        assert_eq!(e.overlaps.map(|o| o.0), Some(Reserved::PageTablePool));
        // The pool itself inside the kernel; a range wrapping around.
        let e = check(&good, &zero, (0x4010_0000, 0x1000)).unwrap_err();
        assert_eq!(
            (e.range, e.overlaps.map(|o| o.0)),
            (ListedRange::PageTablePool, Some(Reserved::KernelImage))
        );
        let e = check(
            &good,
            &[ZeroDesc {
                paddr: u64::MAX - 0xfff,
                size: 0x2000,
            }],
            pool,
        )
        .unwrap_err();
        assert_eq!(e.overlaps, None);
        assert!(e.to_string().contains("wraps around"));
        // An IPC buffer (written by the kernel) inside the page-table pool.
        let mut bad_ipc = pd("a", NO_PARENT);
        bad_ipc.ipc_buffer_paddr = 0x4400_8000;
        let blob = write(pool.0, pool.1, &[bad_ipc], &good, &caps, &[], &zero);
        let e = BootInfo::parse(&blob)
            .unwrap()
            .check_ranges(kernel, blob_at)
            .unwrap_err();
        assert_eq!(
            (e.range, e.overlaps.map(|o| o.0)),
            (ListedRange::IpcBuffer(0), Some(Reserved::PageTablePool))
        );
        assert!(
            e.to_string()
                .starts_with("the IPC buffer of PD 0 at 0x44008000+0x1000 overlaps"),
            "{e}"
        );
        // Touching (not overlapping) is fine.
        assert_eq!(
            check(
                &[map(0x4018_0000, 0x1000)],
                &[ZeroDesc {
                    paddr: 0x4300_2000,
                    size: 0x1000
                }],
                pool
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects_bad_blobs() {
        let blob = write(0, 0, &[pd("a", NO_PARENT)], &[], &[], &[], &[]);
        assert_eq!(BootInfo::parse(&blob[..10]).unwrap_err(), BootInfoError::Truncated);
        let mut bad = blob.clone();
        bad[0] ^= 1;
        assert_eq!(BootInfo::parse(&bad).unwrap_err(), BootInfoError::BadMagic);
        // The PD claims one map and one cap, but the tables are empty.
        assert_eq!(BootInfo::parse(&blob).unwrap_err(), BootInfoError::BadReference);
        let orphan = write(
            0,
            0,
            &[pd("a", 5)],
            &[MapDesc::new_zeroed()],
            &[CapDesc::new_zeroed()],
            &[],
            &[],
        );
        assert_eq!(BootInfo::parse(&orphan).unwrap_err(), BootInfoError::BadReference);
        let short = &blob[..blob.len() - 1];
        assert_eq!(BootInfo::parse(short).unwrap_err(), BootInfoError::Truncated);
    }
}
