//! The arm64 Linux `Image` header, and where kernel, initrd and device tree go in RAM.
//!
//! The header (Documentation/arch/arm64/booting.rst) is the first 64 bytes of the
//! file: `code0`/`code1` (u32), `text_offset` (u64 LE at 8), `image_size` (u64 at 16),
//! `flags` (u64 at 24), three reserved u64, `magic` = "ARM\x64" at 0x38 and a
//! reserved/PE-offset u32. The kernel must be loaded at a 2 MiB-aligned address plus
//! `text_offset`, with `image_size` bytes (BSS included) free from there.

use core::fmt;

/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// Offset of the magic number.
pub const MAGIC_OFFSET: usize = 0x38;
/// "ARM\x64", little-endian.
pub const MAGIC: u32 = 0x644d_5241;
/// Alignment of the kernel's base address (text_offset is added to it).
pub const BASE_ALIGN: u64 = 2 << 20;
/// `text_offset` before Linux 3.17 set `image_size` (it was 0x80000 then).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// The device tree must be 8-byte aligned and at most this big (booting.rst).
pub const MAX_DTB_SIZE: u64 = 2 << 20;

/// Page size the kernel was built for (flags bits 2:1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 0: not specified (older kernels).
    Unspecified,
    /// 4 KiB.
    Size4K,
    /// 16 KiB.
    Size16K,
    /// 64 KiB.
    Size64K,
}

/// Why a file is not a bootable arm64 `Image`, or does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the 64-byte header.
    TooShort {
        /// File length.
        len: usize,
    },
    /// A gzip file (e.g. a compressed `vmlinuz`): decompress it first.
    Gzip,
    /// An EFI zboot image ("zimg" compressed kernel with an EFI decompressor):
    /// extract the payload first.
    EfiZboot,
    /// An ELF file (e.g. `vmlinux`): use the `Image` (arch/arm64/boot/Image) instead.
    Elf,
    /// No "ARM\x64" magic at offset 0x38.
    BadMagic {
        /// What is there instead.
        found: u32,
    },
    /// flags bit 0 says big-endian; the VM runs little-endian kernels only.
    BigEndian,
    /// `text_offset` is not below 2 MiB or not 4 KiB aligned.
    BadTextOffset {
        /// The value.
        text_offset: u64,
    },
    /// `image_size` is smaller than the file (which it must cover) or absurdly large.
    BadImageSize {
        /// The header's image_size.
        image_size: u64,
        /// File length.
        file_len: usize,
    },
    /// The kernel, initrd and device tree do not fit in RAM.
    RamTooSmall {
        /// Bytes of RAM needed from RAM base.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::TooShort { len } => {
                write!(
                    f,
                    "kernel file is {len} bytes, shorter than the 64-byte arm64 Image header"
                )
            }
            ImageError::Gzip => {
                write!(f, "kernel file is gzip-compressed; decompress it to a raw arm64 Image")
            }
            ImageError::EfiZboot => write!(
                f,
                "kernel file is an EFI zboot (compressed) image; extract the raw arm64 Image"
            ),
            ImageError::Elf => {
                write!(f, "kernel file is an ELF (vmlinux); use the raw arm64 Image instead")
            }
            ImageError::BadMagic { found } => write!(
                f,
                "not an arm64 Linux Image: magic at 0x38 is {found:#010x}, expected \"ARM\\x64\""
            ),
            ImageError::BigEndian => write!(f, "arm64 Image is big-endian; only little-endian kernels boot"),
            ImageError::BadTextOffset { text_offset } => write!(
                f,
                "arm64 Image text_offset {text_offset:#x} is not 4 KiB aligned below 2 MiB"
            ),
            ImageError::BadImageSize { image_size, file_len } => write!(
                f,
                "arm64 Image image_size {image_size:#x} does not cover the {file_len}-byte file \
                 or is too large"
            ),
            ImageError::RamTooSmall { needed, available } => write!(
                f,
                "guest RAM too small: {needed:#x} bytes needed for kernel, initrd and device tree, \
                 {available:#x} available"
            ),
        }
    }
}

/// A validated `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the kernel from its 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies from its load address, BSS included (at least the
    /// file's length).
    pub image_size: u64,
    /// Raw flags.
    pub flags: u64,
}

/// Largest image_size accepted (1 GiB): guards the arithmetic, far above any kernel.
const MAX_IMAGE_SIZE: u64 = 1 << 30;

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl ImageHeader {
    /// Validates the header at the start of `image` (the whole file, so its length
    /// can be checked against `image_size`).
    pub fn parse(image: &[u8]) -> Result<Self, ImageError> {
        Self::parse_head(&image[..image.len().min(HEADER_SIZE)], image.len())
    }

    /// Validates a header given only the file's first bytes (`head`, at least
    /// [`HEADER_SIZE`] of them for a valid header) and its length `file_len`: for a
    /// VMM that reads the header out of a memory region instead of holding a slice.
    pub fn parse_head(head: &[u8], file_len: usize) -> Result<Self, ImageError> {
        let image = head;
        if image.starts_with(&[0x1f, 0x8b]) {
            return Err(ImageError::Gzip);
        }
        if image.starts_with(b"\x7fELF") {
            return Err(ImageError::Elf);
        }
        if image.len() >= 8 && image.starts_with(b"MZ") && &image[4..8] == b"zimg" {
            return Err(ImageError::EfiZboot);
        }
        if image.len() < HEADER_SIZE || file_len < HEADER_SIZE {
            return Err(ImageError::TooShort {
                len: file_len.min(image.len()),
            });
        }
        let magic = le32(image, MAGIC_OFFSET);
        if magic != MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let mut text_offset = le64(image, 8);
        let mut image_size = le64(image, 16);
        let flags = le64(image, 24);
        if image_size == 0 {
            // Kernels before 3.17 leave image_size 0 and text_offset in unspecified
            // endianness; booting.rst says text_offset is then 0x80000.
            text_offset = LEGACY_TEXT_OFFSET;
            image_size = file_len as u64;
        }
        if flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        if text_offset >= BASE_ALIGN || !text_offset.is_multiple_of(4096) {
            return Err(ImageError::BadTextOffset { text_offset });
        }
        if image_size < file_len as u64 || image_size > MAX_IMAGE_SIZE {
            return Err(ImageError::BadImageSize { image_size, file_len });
        }
        Ok(ImageHeader {
            text_offset,
            image_size,
            flags,
        })
    }

    /// Page size the kernel expects.
    pub fn page_size(&self) -> PageSize {
        match (self.flags >> 1) & 3 {
            1 => PageSize::Size4K,
            2 => PageSize::Size16K,
            3 => PageSize::Size64K,
            _ => PageSize::Unspecified,
        }
    }

    /// flags bit 3: the kernel may sit anywhere in RAM (otherwise its 2 MiB-aligned
    /// base should be as close as possible to the start of RAM).
    pub fn anywhere(&self) -> bool {
        self.flags & (1 << 3) != 0
    }

    /// Guest-physical load address for RAM starting at `ram_base`: `ram_base` rounded
    /// up to 2 MiB, plus `text_offset`. `None` if that overflows.
    pub fn load_address(&self, ram_base: u64) -> Option<u64> {
        ram_base
            .checked_next_multiple_of(BASE_ALIGN)?
            .checked_add(self.text_offset)
    }

    /// Bytes of RAM the kernel needs from its 2 MiB-aligned base: `text_offset +
    /// image_size`.
    pub fn ram_needed(&self) -> u64 {
        self.text_offset + self.image_size
    }
}

/// Where everything goes in guest RAM, from [`boot_layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// Kernel load address (x0 of the vCPU's entry is the DTB; PC starts here).
    pub kernel: u64,
    /// End of the kernel's `image_size` (first byte after its BSS).
    pub kernel_end: u64,
    /// Initrd start and end (`linux,initrd-start`/`-end`), if there is one.
    pub initrd: Option<(u64, u64)>,
    /// Device tree address (x0 at entry), 2 MiB aligned so it never shares a 2 MiB
    /// block with anything else.
    pub dtb: u64,
}

/// Lays out the kernel at its [`ImageHeader::load_address`], the device tree in the
/// last 2 MiB-aligned 2 MiB block of RAM and the initrd (page aligned) just below it,
/// as far from the kernel's BSS and early allocations as possible. Errors if they do
/// not fit in `ram_size` bytes at `ram_base`. Any blob from [`crate::fdt::build`] fits
/// the device tree block; the initrd's addresses then go into [`crate::fdt::FdtConfig`].
pub fn boot_layout(
    header: &ImageHeader,
    ram_base: u64,
    ram_size: u64,
    initrd_len: Option<u64>,
) -> Result<BootLayout, ImageError> {
    let too_small = |needed: u64| ImageError::RamTooSmall {
        needed,
        available: ram_size,
    };
    let kernel = header.load_address(ram_base).ok_or(too_small(u64::MAX))?;
    let kernel_end = kernel.checked_add(header.image_size).ok_or(too_small(u64::MAX))?;
    let ram_end = ram_base.checked_add(ram_size).ok_or(too_small(u64::MAX))?;
    let dtb = ram_end
        .checked_sub(BASE_ALIGN)
        .map(|a| a & !(BASE_ALIGN - 1))
        .filter(|&a| a >= ram_base && a + BASE_ALIGN <= ram_end);
    let initrd_pages = initrd_len.map(|l| l.div_ceil(4096).saturating_mul(4096));
    let needed = (kernel_end - ram_base)
        .saturating_add(initrd_pages.unwrap_or(0))
        .saturating_add(BASE_ALIGN)
        .checked_next_multiple_of(BASE_ALIGN)
        .unwrap_or(u64::MAX);
    let dtb = match dtb {
        Some(d) if d >= kernel_end => d,
        _ => return Err(too_small(needed)),
    };
    let initrd = match (initrd_len, initrd_pages) {
        (Some(len), Some(pages)) => {
            let start = dtb
                .checked_sub(pages)
                .filter(|&s| s >= kernel_end)
                .ok_or(too_small(needed))?;
            Some((start, start + len))
        }
        _ => None,
    };
    Ok(BootLayout {
        kernel,
        kernel_end,
        initrd,
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 64 bytes of Debian's linux-image-6.1.0-56-cloud-arm64 `vmlinuz`
    /// (an uncompressed Image with an EFI stub: "MZ" code0, PE header at 0x40).
    const DEBIAN_6_1_HEADER: [u8; 64] = [
        0x4d, 0x5a, 0x40, 0xfa, 0x46, 0x63, 0x4e, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0xab, 0x01, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0x52, 0x4d, 0x64, 0x40, 0, 0, 0,
    ];
    /// That file's length.
    const DEBIAN_6_1_LEN: usize = 27_302_400;

    fn debian_image() -> Vec<u8> {
        let mut v = DEBIAN_6_1_HEADER.to_vec();
        v.resize(DEBIAN_6_1_LEN, 0);
        v
    }

    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn debian_kernel_header() {
        let h = ImageHeader::parse(&debian_image()).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x01ab_0000);
        assert_eq!(h.page_size(), PageSize::Size4K);
        assert!(h.anywhere());
        assert_eq!(h.load_address(0x4000_0000), Some(0x4000_0000));
        assert_eq!(h.ram_needed(), 0x01ab_0000);
    }

    #[test]
    fn header_alone_with_file_length_parses_the_same() {
        let whole = ImageHeader::parse(&debian_image()).unwrap();
        let head = ImageHeader::parse_head(&DEBIAN_6_1_HEADER, DEBIAN_6_1_LEN).unwrap();
        assert_eq!(whole, head);
        // The file length still counts: a file longer than image_size is refused.
        assert!(matches!(
            ImageHeader::parse_head(&DEBIAN_6_1_HEADER, 0x01ab_0001),
            Err(ImageError::BadImageSize { .. })
        ));
        assert_eq!(
            ImageHeader::parse_head(&DEBIAN_6_1_HEADER[..32], DEBIAN_6_1_LEN),
            Err(ImageError::TooShort { len: 32 })
        );
        assert_eq!(
            ImageHeader::parse_head(&DEBIAN_6_1_HEADER, 10),
            Err(ImageError::TooShort { len: 10 })
        );
    }

    #[test]
    fn load_address_rounds_ram_base_up() {
        let h = ImageHeader::parse(&header(0x8_0000, 0x10_0000, 2)).unwrap();
        assert_eq!(h.load_address(0x4000_0000), Some(0x4008_0000));
        assert_eq!(h.load_address(0x4000_1000), Some(0x4028_0000));
        assert_eq!(h.load_address(u64::MAX - 10), None);
        assert_eq!(h.ram_needed(), 0x18_0000);
    }

    #[test]
    fn legacy_header_without_image_size() {
        let mut f = header(0, 0, 0);
        f.resize(0x5000, 0);
        let h = ImageHeader::parse(&f).unwrap();
        assert_eq!((h.text_offset, h.image_size), (0x8_0000, 0x5000));
        assert_eq!(h.page_size(), PageSize::Unspecified);
    }

    #[test]
    fn clear_errors_for_other_files() {
        assert_eq!(ImageHeader::parse(&[]), Err(ImageError::TooShort { len: 0 }));
        assert_eq!(ImageHeader::parse(&[0u8; 63]), Err(ImageError::TooShort { len: 63 }));
        assert_eq!(ImageHeader::parse(&[0x1f, 0x8b, 8, 0]), Err(ImageError::Gzip));
        assert_eq!(ImageHeader::parse(b"\x7fELF\x02\x01\x01"), Err(ImageError::Elf));
        let mut zboot = vec![0u8; 64];
        zboot[..8].copy_from_slice(b"MZ\0\0zimg");
        assert_eq!(ImageHeader::parse(&zboot), Err(ImageError::EfiZboot));
        let mut bad = header(0, 64, 0);
        bad[MAGIC_OFFSET] = b'X';
        assert!(matches!(ImageHeader::parse(&bad), Err(ImageError::BadMagic { .. })));
        assert!(ImageError::BadMagic { found: 0 }.to_string().contains("0x38"));
        assert_eq!(ImageHeader::parse(&header(0, 64, 1)), Err(ImageError::BigEndian));
        assert_eq!(
            ImageHeader::parse(&header(0x20_0000, 64, 0)),
            Err(ImageError::BadTextOffset { text_offset: 0x20_0000 })
        );
        assert_eq!(
            ImageHeader::parse(&header(0x123, 64, 0)),
            Err(ImageError::BadTextOffset { text_offset: 0x123 })
        );
        assert_eq!(
            ImageHeader::parse(&header(0, 32, 0)),
            Err(ImageError::BadImageSize {
                image_size: 32,
                file_len: 64
            })
        );
        assert!(matches!(
            ImageHeader::parse(&header(0, u64::MAX, 0)),
            Err(ImageError::BadImageSize { .. })
        ));
    }

    #[test]
    fn layout_for_256_mib() {
        let h = ImageHeader::parse(&debian_image()).unwrap();
        let l = boot_layout(&h, 0x4000_0000, 256 << 20, Some(1_104_594)).unwrap();
        assert_eq!(l.kernel, 0x4000_0000);
        assert_eq!(l.kernel_end, 0x41ab_0000);
        assert_eq!(l.dtb, 0x4fe0_0000);
        let (start, end) = l.initrd.unwrap();
        assert_eq!(start % 4096, 0);
        assert_eq!(end - start, 1_104_594);
        assert!(end <= l.dtb && start >= l.kernel_end);
        let no_initrd = boot_layout(&h, 0x4000_0000, 256 << 20, None).unwrap();
        assert_eq!(no_initrd.initrd, None);
    }

    #[test]
    fn layout_errors() {
        let h = ImageHeader::parse(&debian_image()).unwrap();
        // 28 MiB: the kernel fits but not the DTB block above it.
        assert!(matches!(
            boot_layout(&h, 0x4000_0000, 28 << 20, None),
            Err(ImageError::RamTooSmall { .. })
        ));
        // 32 MiB fits kernel and DTB, but not a 10 MiB initrd.
        assert!(boot_layout(&h, 0x4000_0000, 32 << 20, None).is_ok());
        assert!(matches!(
            boot_layout(&h, 0x4000_0000, 32 << 20, Some(10 << 20)),
            Err(ImageError::RamTooSmall { .. })
        ));
        // Absurd inputs: no overflow panics.
        assert!(boot_layout(&h, u64::MAX - 4096, u64::MAX, Some(u64::MAX)).is_err());
        assert!(boot_layout(&h, 0, 0, None).is_err());
        assert!(boot_layout(&h, 0x4000_0000, 256 << 20, Some(u64::MAX)).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        for i in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = i % 130;
            let mut f: Vec<u8> = (0..len).map(|k| (x >> (k % 57)) as u8).collect();
            if i % 3 == 0 && len >= HEADER_SIZE {
                f[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(b"ARM\x64");
            }
            if let Ok(h) = ImageHeader::parse(&f) {
                assert!(h.image_size >= len as u64);
                let _ = boot_layout(&h, x, x.rotate_left(9), Some(x >> 3));
            }
        }
    }
}
