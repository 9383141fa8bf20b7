//! The control region every VCP protocol shares the shape of: an info page at offset 0
//! that only the server writes, starting with the same header (magic, version, ready,
//! generation: [`header_offsets`]), published ready-last ([`InfoHeader::publish`]) and
//! read with a re-check for a server re-publishing meanwhile ([`InfoHeader::read`]);
//! the rings after it (each half checks the region holds them: [`check_size`]); and the
//! server's cut-off of a client that broke a ring ([`CutOff`]).

use core::fmt;
use core::sync::atomic::Ordering;

use vcpos_queue::{LayoutError, OutOfBounds, SharedMemory};

/// Offsets of the info page header (each a `u32`, written only by the server); a
/// protocol's own fields start at [`HEADER_SIZE`].
pub mod header_offsets {
    /// The protocol's magic number.
    pub const MAGIC: usize = 0x00;
    /// The protocol's version.
    pub const VERSION: usize = 0x04;
    /// 1 when the other fields are valid (cleared first, stored last with Release).
    pub const READY: usize = 0x08;
    /// Changes each time the server (re)initialises the connection.
    pub const GENERATION: usize = 0x0c;
}

/// Bytes of the info page header.
pub const HEADER_SIZE: usize = 0x10;

/// A bad info page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    /// The control region cannot hold the info page.
    RegionTooSmall,
    /// A field has an impossible value.
    Field {
        /// Field name.
        name: &'static str,
        /// Its value.
        value: u64,
    },
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::RegionTooSmall => f.write_str("control region too small for the info page"),
            InfoError::Field { name, value } => write!(f, "info page field {name} has impossible value {value:#x}"),
        }
    }
}

/// What identifies a protocol's info page: its magic and the version this side speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoHeader {
    /// The magic number (four ASCII bytes, little-endian).
    pub magic: u32,
    /// The protocol version.
    pub version: u32,
}

/// Reads the protocol's own fields of an info page for [`InfoHeader::read`].
pub struct InfoFields<'a, M> {
    mem: &'a M,
}

impl<M: SharedMemory> InfoFields<'_, M> {
    /// The `u32` at `offset`.
    pub fn load(&self, offset: usize) -> Result<u32, InfoError> {
        self.mem
            .load_u32(offset, Ordering::Relaxed)
            .map_err(|_| InfoError::RegionTooSmall)
    }

    /// The `u32` at `offset`, which must be `want`: else the error names field `name`.
    pub fn expect(&self, name: &'static str, offset: usize, want: u32) -> Result<u32, InfoError> {
        match self.load(offset)? {
            v if v == want => Ok(v),
            v => Err(InfoError::Field { name, value: v.into() }),
        }
    }
}

impl InfoHeader {
    /// The header of a protocol whose magic is the four bytes `magic` (little-endian),
    /// speaking `version`.
    pub const fn new(magic: [u8; 4], version: u32) -> InfoHeader {
        InfoHeader {
            magic: u32::from_le_bytes(magic),
            version,
        }
    }

    /// Writes the info page with `generation`: ready cleared first, then the header,
    /// the protocol's own fields (`fields`), ready stored last with Release.
    pub fn publish<M: SharedMemory>(
        &self,
        mem: &M,
        generation: u32,
        fields: impl FnOnce(&M) -> Result<(), OutOfBounds>,
    ) -> Result<(), OutOfBounds> {
        use header_offsets as o;
        mem.store_u32(o::READY, 0, Ordering::Release)?;
        mem.store_u32(o::MAGIC, self.magic, Ordering::Relaxed)?;
        mem.store_u32(o::VERSION, self.version, Ordering::Relaxed)?;
        mem.store_u32(o::GENERATION, generation, Ordering::Relaxed)?;
        fields(mem)?;
        mem.store_u32(o::READY, 1, Ordering::Release)
    }

    /// Reads the info page: `Ok(None)` while not ready (or while the server re-publishes
    /// it); `Err` names the first impossible field: the magic, the version, then what
    /// `fields(reader, generation)` checks of the protocol's own fields.
    pub fn read<M: SharedMemory, T>(
        &self,
        mem: &M,
        fields: impl FnOnce(&InfoFields<'_, M>, u32) -> Result<T, InfoError>,
    ) -> Result<Option<T>, InfoError> {
        use header_offsets as o;
        let r = InfoFields { mem };
        if mem
            .load_u32(o::READY, Ordering::Acquire)
            .map_err(|_| InfoError::RegionTooSmall)?
            != 1
        {
            return Ok(None);
        }
        r.expect("magic", o::MAGIC, self.magic)?;
        r.expect("version", o::VERSION, self.version)?;
        let generation = r.load(o::GENERATION)?;
        let info = fields(&r, generation)?;
        // A server re-publishing meanwhile: report not ready, the caller retries.
        if r.load(o::READY)? != 1 || r.load(o::GENERATION)? != generation {
            return Ok(None);
        }
        Ok(Some(info))
    }
}

/// The generation on the info page in `mem` now (a client compares it with the one it
/// connected to; a restarted server publishes the next one).
pub fn generation(mem: &impl SharedMemory) -> Result<u32, OutOfBounds> {
    mem.load_u32(header_offsets::GENERATION, Ordering::Relaxed)
}

/// Checks that the control region `mem` holds `size` bytes (info page and rings).
pub fn check_size(mem: &impl SharedMemory, size: usize) -> Result<(), LayoutError> {
    if mem.size() < size {
        return Err(LayoutError::TooSmall {
            end: size,
            size: mem.size(),
        });
    }
    Ok(())
}

/// Why a server stopped serving a client, once it has: the first error is kept, and
/// every later call of the server's half fails with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutOff<E>(Option<E>);

impl<E> Default for CutOff<E> {
    fn default() -> Self {
        CutOff(None)
    }
}

impl<E: Copy> CutOff<E> {
    /// Not cut off.
    pub const fn new() -> Self {
        CutOff(None)
    }

    /// Cuts the client off with `e`, unless it is already (the first reason stays);
    /// returns `e` to pass on.
    pub fn cut(&mut self, e: E) -> E {
        if self.0.is_none() {
            self.0 = Some(e);
        }
        e
    }

    /// `Err` with the reason if the client is cut off.
    pub fn check(&self) -> Result<(), E> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The reason, if the client is cut off.
    pub fn reason(&self) -> Option<E> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vcpos_queue::fake::FakeMemory;

    const HEADER: InfoHeader = InfoHeader::new(*b"TEST", 3);

    /// A protocol with one field of its own, at 0x10, which must be below 100.
    fn read(mem: &FakeMemory) -> Result<Option<(u32, u32)>, InfoError> {
        HEADER.read(mem, |r, generation| {
            let v = r.load(HEADER_SIZE)?;
            if v >= 100 {
                return Err(InfoError::Field {
                    name: "v",
                    value: v.into(),
                });
            }
            Ok((generation, v))
        })
    }

    #[test]
    fn publish_then_read() {
        let mem = FakeMemory::new(0x1000);
        assert_eq!(read(&mem), Ok(None));
        HEADER
            .publish(&mem, 7, |m| m.store_u32(HEADER_SIZE, 42, Ordering::Relaxed))
            .unwrap();
        assert_eq!(read(&mem), Ok(Some((7, 42))));
        assert_eq!(generation(&mem), Ok(7));
        assert_eq!(mem.load_u32(header_offsets::MAGIC, Ordering::Relaxed), Ok(0x5453_4554));
        // Re-published with another generation: read again, the new one.
        HEADER
            .publish(&mem, 8, |m| m.store_u32(HEADER_SIZE, 43, Ordering::Relaxed))
            .unwrap();
        assert_eq!(read(&mem), Ok(Some((8, 43))));
    }

    #[test]
    fn fields_fail_publish_and_ready_stays_clear() {
        let mem = FakeMemory::new(0x1000);
        HEADER.publish(&mem, 1, |_| Ok(())).unwrap();
        let e = HEADER.publish(&mem, 2, |m| m.store_u32(0x2000, 1, Ordering::Relaxed));
        assert!(e.is_err());
        assert_eq!(read(&mem), Ok(None));
    }

    #[test]
    fn bad_header_fields_are_named() {
        let mem = FakeMemory::new(0x1000);
        HEADER.publish(&mem, 1, |_| Ok(())).unwrap();
        let corrupt = |off: usize, v: u32, name: &'static str| {
            let old = mem.load_u32(off, Ordering::Relaxed).unwrap();
            mem.store_u32(off, v, Ordering::Relaxed).unwrap();
            assert_eq!(read(&mem), Err(InfoError::Field { name, value: v.into() }));
            mem.store_u32(off, old, Ordering::Relaxed).unwrap();
        };
        corrupt(header_offsets::MAGIC, 0x1234, "magic");
        corrupt(header_offsets::VERSION, 4, "version");
        corrupt(HEADER_SIZE, 100, "v");
        assert_eq!(read(&mem), Ok(Some((1, 0))));
        assert_eq!(
            InfoError::Field { name: "v", value: 100 }.to_string(),
            "info page field v has impossible value 0x64"
        );
    }

    #[test]
    fn small_regions() {
        assert_eq!(read(&FakeMemory::new(4)), Err(InfoError::RegionTooSmall));
        let mem = FakeMemory::new(HEADER_SIZE);
        HEADER.publish(&mem, 1, |_| Ok(())).unwrap();
        assert_eq!(read(&mem), Err(InfoError::RegionTooSmall));
        assert_eq!(check_size(&mem, HEADER_SIZE), Ok(()));
        assert_eq!(
            check_size(&mem, 0x1000),
            Err(LayoutError::TooSmall {
                end: 0x1000,
                size: HEADER_SIZE
            })
        );
    }

    #[test]
    fn cut_off_keeps_the_first_reason() {
        let mut c = CutOff::<u8>::new();
        assert_eq!((c.check(), c.reason()), (Ok(()), None));
        assert_eq!(c.cut(1), 1);
        assert_eq!(c.cut(2), 2);
        assert_eq!((c.check(), c.reason()), (Err(1), Some(1)));
    }
}
