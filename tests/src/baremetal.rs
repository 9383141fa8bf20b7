//! A minimal bare-metal AArch64 ELF, made byte by byte, that prints one message on the
//! PL011 UART and parks the CPU: it tests the runner and QEMU without needing the
//! kernel or the builder.
//!
//! The program (MMU off, so the UART address is physical and device memory):
//! ```text
//!        movz x0, #uart_lo
//!        movk x0, #uart_hi, lsl #16
//!        adr  x1, msg
//! loop:  ldrb w2, [x1], #1
//!        cbz  w2, done
//!        strb w2, [x0]
//!        b    loop
//! done:  wfe
//!        b    done
//! msg:   .asciz "<message>"
//! ```

/// The instructions above (each a little-endian u32), for a UART at `uart`
/// (an address below 4 GiB). `msg` follows them at byte offset 0x24.
fn code(uart: u32) -> [u32; 9] {
    let (lo, hi) = (uart & 0xffff, uart >> 16);
    [
        0xd280_0000 | (lo << 5), // movz x0, #lo
        0xf2a0_0000 | (hi << 5), // movk x0, #hi, lsl #16
        0x1000_00e1,             // adr x1, .+0x1c (msg)
        0x3840_1422,             // ldrb w2, [x1], #1
        0x3400_0062,             // cbz w2, .+0xc (done)
        0x3900_0002,             // strb w2, [x0]
        0x17ff_fffd,             // b .-0xc (loop)
        0xd503_205f,             // wfe
        0x17ff_ffff,             // b .-4 (done)
    ]
}

/// An ELF64 AArch64 executable with one loadable segment at physical and virtual
/// address `load` (entry there) that prints `message` to the PL011 at `uart`.
pub fn elf(load: u64, uart: u32, message: &str) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const OFFSET: usize = 0x80; // file offset of the segment
    let mut seg: Vec<u8> = code(uart).iter().flat_map(|w| w.to_le_bytes()).collect();
    seg.extend_from_slice(message.as_bytes());
    seg.push(0);

    let mut f = Vec::with_capacity(OFFSET + seg.len());
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type: EXEC
    f.extend_from_slice(&183u16.to_le_bytes()); // e_machine: AArch64
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&load.to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    f.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(f.len(), EHDR);
    // The program header: PT_LOAD, R+X.
    f.extend_from_slice(&1u32.to_le_bytes()); // p_type
    f.extend_from_slice(&5u32.to_le_bytes()); // p_flags
    f.extend_from_slice(&(OFFSET as u64).to_le_bytes()); // p_offset
    f.extend_from_slice(&load.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&load.to_le_bytes()); // p_paddr
    f.extend_from_slice(&(seg.len() as u64).to_le_bytes()); // p_filesz
    f.extend_from_slice(&(seg.len() as u64).to_le_bytes()); // p_memsz
    f.extend_from_slice(&8u64.to_le_bytes()); // p_align
    f.resize(OFFSET, 0);
    f.extend_from_slice(&seg);
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        let e = super::elf(0x4020_0000, 0x0900_0000, "hi");
        assert_eq!(&e[..4], b"\x7fELF");
        assert_eq!(e.len(), 0x80 + 9 * 4 + 3);
        // movz x0, #0; movk x0, #0x900, lsl #16
        assert_eq!(&e[0x80..0x88], &[0x00, 0x00, 0x80, 0xd2, 0x00, 0x20, 0xa1, 0xf2]);
        assert_eq!(&e[0x80 + 0x24..], b"hi\0");
    }
}
