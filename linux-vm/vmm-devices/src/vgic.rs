//! Emulated GICv3 distributor and redistributor for a VM with one vCPU.
//!
//! The kernel runs the GICv3 virtual CPU interface (list registers, the virtual timer);
//! the guest's memory-mapped GIC frames are emulated here from the VMM's VM faults:
//! [`Vgic::read`] / [`Vgic::write`] with the frame ([`Region`]), the offset into it and
//! the access size. The model has a single security state (GICD_CTLR.DS = 1),
//! affinity routing always on (ARE = 1), no LPIs/ITS, and `num_spis` SPIs.
//!
//! Register accesses follow the GICv3 rules: 32-bit accesses to 32-bit registers,
//! byte or word accesses to IPRIORITYR, 64-bit or 32-bit-half accesses to IROUTER and
//! GICR_TYPER. Any other width, a misaligned access, a reserved offset or an INTID
//! that is not implemented reads as zero and ignores writes (RAZ/WI); nothing panics.
//!
//! Interrupt state lives here: the VMM marks a device's SPI pending with
//! [`Vgic::raise`] and asks [`Vgic::take_pending`] for the next SPI to hand to the
//! kernel's list registers (after every raise and after every guest write, which may
//! enable or pend one).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// One of the GIC's memory-mapped frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// GICD, 64 KiB at [`crate::layout::GICD_BASE`].
    Distributor,
    /// GICR of vCPU 0, 128 KiB at [`crate::layout::GICR_BASE`]: RD_base frame at
    /// offset 0, SGI_base frame at offset 0x1_0000.
    Redistributor,
}

/// Most SPIs a GICv3 without extended SPIs can have (INTIDs 32..=1019).
pub const MAX_SPIS: u32 = 988;

/// The model's GICD_IIDR / GICR_IIDR: implementer 0x43B (JEP106 code of Arm, as
/// every GICv3 model uses so drivers see an architected GIC), product 0x56 ('V'),
/// variant 0, revision 0. Chosen not to match any Linux GIC erratum entry.
pub const IIDR: u32 = 0x5600_043b;

/// Peripheral/component ID registers 0xFFD0..=0xFFFC (PIDR4-7, PIDR0-3, CIDR0-3) of
/// the distributor, as a GIC-500 reports them; PIDR2 = 0x3B says ArchRev 3 (GICv3).
const GICD_ID_REGS: [u8; 12] = [0x44, 0, 0, 0, 0x92, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1];
/// The same for the redistributor (part number 0x493).
const GICR_ID_REGS: [u8; 12] = [0x44, 0, 0, 0, 0x93, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1];

/// GICD_CTLR bits with DS = 1.
mod ctlr {
    pub const ENABLE_GRP0: u32 = 1 << 0;
    pub const ENABLE_GRP1: u32 = 1 << 1;
    pub const ARE: u32 = 1 << 4;
    pub const DS: u32 = 1 << 6;
}

/// GICR_WAKER bits.
mod waker {
    pub const PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const CHILDREN_ASLEEP: u32 = 1 << 2;
}

/// GICR_TYPER.Last.
const GICR_TYPER_LAST: u64 = 1 << 4;
/// GICD_TYPER.No1N: 1-of-N SPI routing is not supported (IROUTER.IRM is RES0).
const GICD_TYPER_NO1N: u32 = 1 << 25;
/// GICD_TYPER.IDbits = 10 INTID bits (no LPIs), minus one.
const GICD_TYPER_IDBITS: u32 = 9 << 19;
/// Affinity fields of GICD_IROUTER (Aff3 at 39:32, Aff2..Aff0 at 23:0); IRM is RES0.
const IROUTER_MASK: u64 = 0xff_00ff_ffff;
/// GICR frame size: the SGI_base frame starts here.
const SGI_FRAME: u64 = 0x1_0000;
/// ICFGR0: SGIs are always edge-triggered (odd bits set, read-only).
const ICFGR_SGI: u32 = 0xaaaa_aaaa;

/// Registers that are a bitmap of one bit per INTID, at their GICD base offset; the
/// SGI_base frame has word 0 of each at the same offset.
#[derive(Clone, Copy)]
enum Bits {
    Group,
    Enable,
    Pending,
    Active,
}

/// How a write to a bitmap register changes state.
#[derive(Clone, Copy)]
enum BitWrite {
    /// IGROUPR: the value replaces the implemented bits.
    Replace,
    /// IS*R: ones set bits.
    Set,
    /// IC*R: ones clear bits.
    Clear,
}

/// Decodes a bitmap-register offset (GICD 0x080..=0x3FC, or the same in the SGI
/// frame) into the register, write kind and word index.
fn bitmap_reg(off: u64) -> Option<(Bits, BitWrite, usize)> {
    let word = ((off & 0x7f) / 4) as usize;
    let (bits, kind) = match off & !0x7f {
        0x080 => (Bits::Group, BitWrite::Replace),
        0x100 => (Bits::Enable, BitWrite::Set),
        0x180 => (Bits::Enable, BitWrite::Clear),
        0x200 => (Bits::Pending, BitWrite::Set),
        0x280 => (Bits::Pending, BitWrite::Clear),
        0x300 => (Bits::Active, BitWrite::Set),
        0x380 => (Bits::Active, BitWrite::Clear),
        _ => return None,
    };
    Some((bits, kind, word))
}

/// An SPI ready for the vCPU, as returned by [`Vgic::take_pending`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingIrq {
    /// The INTID (32 or more).
    pub intid: u32,
    /// Its priority (IPRIORITYR byte; lower is more urgent).
    pub priority: u8,
    /// Group 1 (an IRQ to the guest) or group 0 (an FIQ).
    pub group1: bool,
}

/// Invalid [`Vgic`] configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VgicError {
    /// More SPIs than a GICv3 without extended SPIs can have.
    TooManySpis {
        /// The number asked for.
        requested: u32,
    },
}

impl fmt::Display for VgicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VgicError::TooManySpis { requested } => {
                write!(f, "{requested} SPIs asked for; a GICv3 has at most {MAX_SPIS}")
            }
        }
    }
}

/// The distributor and the single redistributor.
#[derive(Clone, Debug)]
pub struct Vgic {
    num_spis: u32,
    affinity: u64,
    ctlr: u32,
    waker: u32,
    /// One bit per INTID, 32 INTIDs a word; word 0 (SGIs, PPIs) is the redistributor's.
    group: Vec<u32>,
    enable: Vec<u32>,
    pending: Vec<u32>,
    active: Vec<u32>,
    /// 1 = edge-triggered.
    edge: Vec<u32>,
    priority: Vec<u8>,
    /// `GICD_IROUTER<n>`, indexed by INTID (entries below 32 unused).
    router: Vec<u64>,
}

impl Vgic {
    /// A GIC with `num_spis` SPIs (INTIDs 32..32+num_spis) whose one redistributor
    /// belongs to the vCPU with MPIDR affinity `affinity` (Aff3 at bits 39:32,
    /// Aff2..Aff0 at 23:0, as in MPIDR_EL1; 0 for vcpos's single vCPU). Everything is
    /// in its reset state: disabled, group 0, priority 0, level-triggered, asleep.
    pub fn new(num_spis: u32, affinity: u64) -> Result<Self, VgicError> {
        if num_spis > MAX_SPIS {
            return Err(VgicError::TooManySpis { requested: num_spis });
        }
        let words = (32 + num_spis as usize).div_ceil(32);
        let mut edge = vec![0u32; words];
        edge[0] = 0xffff; // SGIs 0..=15
        Ok(Vgic {
            num_spis,
            affinity: affinity & IROUTER_MASK,
            ctlr: 0,
            waker: waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP,
            group: vec![0; words],
            enable: vec![0; words],
            pending: vec![0; words],
            active: vec![0; words],
            edge,
            priority: vec![0; words * 32],
            router: vec![0; words * 32],
        })
    }

    /// Number of SPIs.
    pub fn num_spis(&self) -> u32 {
        self.num_spis
    }

    fn words(&self) -> usize {
        self.group.len()
    }

    /// Whether `intid` is an implemented SPI.
    fn is_spi(&self, intid: u32) -> bool {
        intid >= 32 && intid < 32 + self.num_spis
    }

    /// Whether `intid` is an implemented SGI, PPI or SPI.
    fn implemented(&self, intid: u32) -> bool {
        intid < 32 + self.num_spis
    }

    /// Implemented INTIDs of bitmap word `word` as a mask.
    fn word_mask(&self, word: usize) -> u32 {
        let first = word as u64 * 32;
        let end = 32 + u64::from(self.num_spis);
        if first >= end {
            0
        } else if end - first >= 32 {
            u32::MAX
        } else {
            (1u32 << (end - first)) - 1
        }
    }

    fn bitmap(&self, bits: Bits) -> &Vec<u32> {
        match bits {
            Bits::Group => &self.group,
            Bits::Enable => &self.enable,
            Bits::Pending => &self.pending,
            Bits::Active => &self.active,
        }
    }

    fn bitmap_mut(&mut self, bits: Bits) -> &mut Vec<u32> {
        match bits {
            Bits::Group => &mut self.group,
            Bits::Enable => &mut self.enable,
            Bits::Pending => &mut self.pending,
            Bits::Active => &mut self.active,
        }
    }

    fn bit(map: &[u32], intid: u32) -> bool {
        map.get(intid as usize / 32)
            .is_some_and(|w| w & (1 << (intid % 32)) != 0)
    }

    fn write_bits(&mut self, bits: Bits, kind: BitWrite, word: usize, value: u32) {
        if word >= self.words() {
            return;
        }
        let mask = self.word_mask(word);
        let w = &mut self.bitmap_mut(bits)[word];
        match kind {
            BitWrite::Replace => *w = (*w & !mask) | (value & mask),
            BitWrite::Set => *w |= value & mask,
            BitWrite::Clear => *w &= !(value & mask),
        }
    }

    fn read_bits(&self, bits: Bits, word: usize) -> u32 {
        self.bitmap(bits).get(word).copied().unwrap_or(0) & self.word_mask(word)
    }

    /// The 2-bit-per-INTID ICFGR word `index` (16 INTIDs from `index * 16`).
    fn read_icfgr(&self, index: usize) -> u32 {
        let mut v = 0;
        for k in 0..16u32 {
            let intid = index as u32 * 16 + k;
            if self.implemented(intid) && Self::bit(&self.edge, intid) {
                v |= 2 << (2 * k);
            }
        }
        v
    }

    /// Writes ICFGR word `index`; SGIs (index 0) are read-only.
    fn write_icfgr(&mut self, index: usize, value: u32) {
        if index == 0 {
            return;
        }
        for k in 0..16u32 {
            let intid = index as u32 * 16 + k;
            if !self.implemented(intid) {
                continue;
            }
            let w = &mut self.edge[intid as usize / 32];
            if value & (2 << (2 * k)) != 0 {
                *w |= 1 << (intid % 32);
            } else {
                *w &= !(1 << (intid % 32));
            }
        }
    }

    /// Reads `size` bytes of IPRIORITYR at byte `first` (an INTID); `allowed` says
    /// which INTIDs this frame holds.
    fn read_priority(&self, first: u32, size: u8, allowed: impl Fn(u32) -> bool) -> u64 {
        let mut v = 0u64;
        for k in 0..u32::from(size) {
            let intid = first + k;
            if allowed(intid) && self.implemented(intid) {
                v |= u64::from(self.priority[intid as usize]) << (8 * k);
            }
        }
        v
    }

    fn write_priority(&mut self, first: u32, size: u8, value: u64, allowed: impl Fn(u32) -> bool) {
        for k in 0..u32::from(size) {
            let intid = first + k;
            if allowed(intid) && self.implemented(intid) {
                self.priority[intid as usize] = (value >> (8 * k)) as u8;
            }
        }
    }

    fn gicd_typer(&self) -> u32 {
        let it_lines = (self.words() as u32).saturating_sub(1) & 0x1f;
        GICD_TYPER_NO1N | GICD_TYPER_IDBITS | it_lines
    }

    fn gicr_typer(&self) -> u64 {
        // Aff3..Aff0 packed into bits 63:32; processor number 0; the only (last) one.
        let a = self.affinity;
        let packed = ((a >> 32) & 0xff) << 24 | (a & 0xff_ffff);
        packed << 32 | GICR_TYPER_LAST
    }

    /// A guest read of `size` bytes at `offset` into `region`. Invalid accesses read 0.
    pub fn read(&self, region: Region, offset: u64, size: u8) -> u64 {
        if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
            return 0;
        }
        match region {
            Region::Distributor => self.read_gicd(offset, size),
            Region::Redistributor if offset < SGI_FRAME => self.read_rd(offset, size),
            Region::Redistributor => self.read_sgi(offset - SGI_FRAME, size),
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset` into `region`.
    /// Invalid accesses are ignored.
    pub fn write(&mut self, region: Region, offset: u64, size: u8, value: u64) {
        if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
            return;
        }
        match region {
            Region::Distributor => self.write_gicd(offset, size, value),
            Region::Redistributor if offset < SGI_FRAME => self.write_rd(offset, size, value),
            Region::Redistributor => self.write_sgi(offset - SGI_FRAME, size, value),
        }
    }

    fn read_gicd(&self, off: u64, size: u8) -> u64 {
        match (off, size) {
            (0x0000, 4) => u64::from(self.ctlr | ctlr::ARE | ctlr::DS),
            (0x0004, 4) => u64::from(self.gicd_typer()),
            (0x0008, 4) => u64::from(IIDR),
            // TYPER2, STATUSR: nothing to report.
            (0x0080..=0x03ff, 4) => match bitmap_reg(off) {
                // Word 0 (SGIs, PPIs) is in the redistributor when ARE = 1.
                Some((bits, _, word)) if word > 0 => u64::from(self.read_bits(bits, word)),
                _ => 0,
            },
            (0x0400..=0x07ff, 1 | 4) => self.read_priority((off - 0x400) as u32, size, |i| i >= 32),
            (0x0c00..=0x0cff, 4) => match ((off - 0xc00) / 4) as usize {
                0 | 1 => 0,
                index => u64::from(self.read_icfgr(index)),
            },
            (0x6100..=0x7fdf, 8) => self.read_router((off - 0x6000) / 8),
            (0x6100..=0x7fdf, 4) => {
                let r = self.read_router((off - 0x6000) / 8);
                if off.is_multiple_of(8) {
                    r & 0xffff_ffff
                } else {
                    r >> 32
                }
            }
            (0xffd0..=0xffff, 4) => u64::from(GICD_ID_REGS[((off - 0xffd0) / 4) as usize]),
            _ => 0,
        }
    }

    fn write_gicd(&mut self, off: u64, size: u8, value: u64) {
        let v32 = value as u32;
        match (off, size) {
            (0x0000, 4) => self.ctlr = v32 & (ctlr::ENABLE_GRP0 | ctlr::ENABLE_GRP1),
            (0x0080..=0x03ff, 4) => {
                if let Some((bits, kind, word)) = bitmap_reg(off) {
                    if word > 0 {
                        self.write_bits(bits, kind, word, v32);
                    }
                }
            }
            (0x0400..=0x07ff, 1 | 4) => self.write_priority((off - 0x400) as u32, size, value, |i| i >= 32),
            (0x0c00..=0x0cff, 4) => {
                let index = ((off - 0xc00) / 4) as usize;
                if index >= 2 {
                    self.write_icfgr(index, v32);
                }
            }
            (0x6100..=0x7fdf, 8) => self.write_router((off - 0x6000) / 8, value, u64::MAX),
            (0x6100..=0x7fdf, 4) => {
                let (shifted, mask) = if off.is_multiple_of(8) {
                    (value & 0xffff_ffff, 0xffff_ffff)
                } else {
                    ((value & 0xffff_ffff) << 32, 0xffff_ffff_0000_0000)
                };
                self.write_router((off - 0x6000) / 8, shifted, mask)
            }
            _ => {}
        }
    }

    fn read_router(&self, intid: u64) -> u64 {
        match u32::try_from(intid) {
            Ok(i) if self.is_spi(i) => self.router[i as usize],
            _ => 0,
        }
    }

    /// Replaces the `mask` bits of IROUTER for `intid` with those of `value`.
    fn write_router(&mut self, intid: u64, value: u64, mask: u64) {
        if let Ok(i) = u32::try_from(intid) {
            if self.is_spi(i) {
                let r = &mut self.router[i as usize];
                *r = ((*r & !mask) | (value & mask)) & IROUTER_MASK;
            }
        }
    }

    fn read_rd(&self, off: u64, size: u8) -> u64 {
        match (off, size) {
            // CTLR: no LPIs, RWP never set.
            (0x0004, 4) => u64::from(IIDR),
            (0x0008, 8) => self.gicr_typer(),
            (0x0008, 4) => self.gicr_typer() & 0xffff_ffff,
            (0x000c, 4) => self.gicr_typer() >> 32,
            (0x0014, 4) => u64::from(self.waker),
            (0xffd0..=0xffff, 4) => u64::from(GICR_ID_REGS[((off - 0xffd0) / 4) as usize]),
            _ => 0,
        }
    }

    fn write_rd(&mut self, off: u64, size: u8, value: u64) {
        if (off, size) == (0x0014, 4) {
            // ChildrenAsleep follows ProcessorSleep at once: there is no interface to
            // quiesce.
            self.waker = if value as u32 & waker::PROCESSOR_SLEEP != 0 {
                waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP
            } else {
                0
            };
        }
    }

    fn read_sgi(&self, off: u64, size: u8) -> u64 {
        match (off, size) {
            (0x0080..=0x03ff, 4) => match bitmap_reg(off) {
                Some((bits, _, 0)) => u64::from(self.read_bits(bits, 0)),
                _ => 0,
            },
            (0x0400..=0x041f, 1 | 4) => self.read_priority((off - 0x400) as u32, size, |i| i < 32),
            (0x0c00, 4) => u64::from(ICFGR_SGI),
            (0x0c04, 4) => u64::from(self.read_icfgr(1)),
            _ => 0,
        }
    }

    fn write_sgi(&mut self, off: u64, size: u8, value: u64) {
        match (off, size) {
            (0x0080..=0x03ff, 4) => {
                if let Some((bits, kind, 0)) = bitmap_reg(off) {
                    self.write_bits(bits, kind, 0, value as u32);
                }
            }
            (0x0400..=0x041f, 1 | 4) => self.write_priority((off - 0x400) as u32, size, value, |i| i < 32),
            (0x0c04, 4) => self.write_icfgr(1, value as u32),
            _ => {}
        }
    }

    /// Whether the guest has enabled `intid` (its ISENABLER bit), any INTID.
    pub fn enabled(&self, intid: u32) -> bool {
        self.implemented(intid) && Self::bit(&self.enable, intid)
    }

    /// Whether SPI `intid` would be forwarded to the vCPU: it is an implemented SPI,
    /// its enable bit is set and the distributor enables its group (GICD_CTLR).
    pub fn spi_enabled(&self, intid: u32) -> bool {
        if !self.is_spi(intid) || !Self::bit(&self.enable, intid) {
            return false;
        }
        let group_enable = if Self::bit(&self.group, intid) {
            ctlr::ENABLE_GRP1
        } else {
            ctlr::ENABLE_GRP0
        };
        self.ctlr & group_enable != 0
    }

    /// Whether `intid` is pending in the model.
    pub fn pending(&self, intid: u32) -> bool {
        self.implemented(intid) && Self::bit(&self.pending, intid)
    }

    /// Priority of `intid`, or `None` if it is not implemented.
    pub fn priority(&self, intid: u32) -> Option<u8> {
        self.implemented(intid).then(|| self.priority[intid as usize])
    }

    /// Whether `intid` is configured edge-triggered (false: level), or `None` if it is
    /// not implemented.
    pub fn edge_triggered(&self, intid: u32) -> Option<bool> {
        self.implemented(intid).then(|| Self::bit(&self.edge, intid))
    }

    /// Whether the guest woke the redistributor (GICR_WAKER.ProcessorSleep = 0).
    pub fn redistributor_awake(&self) -> bool {
        self.waker & waker::PROCESSOR_SLEEP == 0
    }

    /// A device raised SPI `intid` (an edge, or a level going high): it becomes
    /// pending. Returns false (and changes nothing) if `intid` is not an SPI.
    pub fn raise(&mut self, intid: u32) -> bool {
        if !self.is_spi(intid) {
            return false;
        }
        self.pending[intid as usize / 32] |= 1 << (intid % 32);
        true
    }

    /// The most urgent pending SPI that [`Self::spi_enabled`] allows (lowest priority
    /// value, then lowest INTID), with its pending bit cleared: the VMM hands it to the
    /// kernel for a list register. `None` if there is nothing to deliver.
    pub fn take_pending(&mut self) -> Option<PendingIrq> {
        let mut best: Option<PendingIrq> = None;
        for word in 1..self.words() {
            let mut bits = self.pending[word] & self.enable[word] & self.word_mask(word);
            while bits != 0 {
                let intid = word as u32 * 32 + bits.trailing_zeros();
                bits &= bits - 1;
                if !self.spi_enabled(intid) {
                    continue;
                }
                let priority = self.priority[intid as usize];
                if best.is_none_or(|b| priority < b.priority) {
                    best = Some(PendingIrq {
                        intid,
                        priority,
                        group1: Self::bit(&self.group, intid),
                    });
                }
            }
        }
        let irq = best?;
        self.pending[irq.intid as usize / 32] &= !(1 << (irq.intid % 32));
        Some(irq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Region::{Distributor as D, Redistributor as R};

    fn gic() -> Vgic {
        Vgic::new(crate::layout::NUM_SPIS, 0).unwrap()
    }

    /// Replays what Linux 6.x's irq-gic-v3 driver does at probe and when a driver
    /// requests an SPI (gic_of_init, gic_init_bases, gic_update_rdist_properties,
    /// gic_dist_init, gic_cpu_init, gic_configure_irq, gic_unmask_irq), asserting every
    /// value it checks.
    #[test]
    fn linux_gic_v3_probe_sequence() {
        let mut g = gic();
        // gic_validate_dist_version: GICD_PIDR2.ArchRev must be 3 or 4.
        assert_eq!(g.read(D, 0xffe8, 4) & 0xf0, 0x30);
        // gic_init_bases: GICD_TYPER, TYPER2, IIDR.
        let typer = g.read(D, 0x4, 4);
        let lines = ((typer & 0x1f) + 1) * 32;
        assert_eq!(lines, 96, "GIC_LINE_NR covers INTIDs up to 95");
        assert_eq!((typer >> 19) & 0x1f, 9, "IDbits: 10 bits");
        assert_eq!(typer & (1 << 17), 0, "no LPIs: ITS not probed");
        assert_eq!(typer & (1 << 16), 0, "no MBIs");
        assert_eq!(typer & (1 << 8), 0, "no extended SPIs");
        assert_eq!(typer & (1 << 26), 0, "no range selector");
        assert_eq!(g.read(D, 0xc, 4), 0, "TYPER2: no vSGIs, nASSGIcap 0");
        assert_eq!(g.read(D, 0x8, 4), u64::from(IIDR));
        // gic_iterate_rdists: GICR_PIDR2, then GICR_TYPER (readq) until Last.
        assert_eq!(g.read(R, 0xffe8, 4) & 0xf0, 0x30);
        let rtyper = g.read(R, 0x8, 8);
        assert_ne!(rtyper & (1 << 4), 0, "Last");
        assert_eq!(rtyper >> 32, 0, "affinity of vCPU 0 (MPIDR 0)");
        assert_eq!((rtyper >> 27) & 0x1f, 0, "PPInum 0: 16 PPIs");
        assert_eq!(rtyper & 0b11, 0, "no physical/virtual LPIs");
        assert_eq!(g.read(R, 0x0, 4), 0, "GICR_CTLR");
        // gic_dist_init: disable, wait for RWP, all SPIs group 1.
        g.write(D, 0x0, 4, 0);
        assert_eq!(g.read(D, 0x0, 4) & (1 << 31), 0, "RWP clear");
        for i in (32..lines).step_by(32) {
            g.write(D, 0x80 + i / 8, 4, 0xffff_ffff);
        }
        // gic_dist_config: level, default priority 0xa0, deactivate, disable.
        for i in (32..lines).step_by(16) {
            g.write(D, 0xc00 + i / 4, 4, 0);
        }
        for i in (32..lines).step_by(4) {
            g.write(D, 0x400 + i, 4, 0xa0a0_a0a0);
        }
        for i in (32..lines).step_by(32) {
            g.write(D, 0x380 + i / 8, 4, 0xffff_ffff);
            g.write(D, 0x180 + i / 8, 4, 0xffff_ffff);
        }
        g.write(D, 0x0, 4, (1 << 4) | (1 << 1) | 1);
        let ctlr = g.read(D, 0x0, 4);
        assert_eq!(ctlr & (1 << 31), 0, "RWP clear");
        assert_eq!(ctlr & 0b11, 0b11, "groups enabled");
        assert_ne!(ctlr & (1 << 4), 0, "ARE");
        assert_ne!(ctlr & (1 << 6), 0, "DS: one security state");
        for i in 32..lines {
            g.write(D, 0x6000 + i * 8, 8, 0);
        }
        // gic_cpu_init: find our redistributor, wake it.
        let w = g.read(R, 0x14, 4);
        g.write(R, 0x14, 4, w & !(1 << 1));
        assert_eq!(g.read(R, 0x14, 4) & (1 << 2), 0, "ChildrenAsleep cleared: awake");
        assert!(g.redistributor_awake());
        // gic_cpu_config: SGIs/PPIs group 1, deactivate and disable all, priorities.
        g.write(R, 0x1_0080, 4, 0xffff_ffff);
        g.write(R, 0x1_0380, 4, 0xffff_ffff);
        g.write(R, 0x1_0180, 4, 0xffff_ffff);
        for i in (0..32).step_by(4) {
            g.write(R, 0x1_0400 + i, 4, 0xa0a0_a0a0);
        }
        assert_eq!(g.read(R, 0x0, 4) & (1 << 3), 0, "GICR_CTLR.RWP clear");
        assert_eq!(g.read(R, 0x1_0100, 4), 0);
        assert_eq!(g.read(R, 0x1_0080, 4), 0xffff_ffff);
        // IPIs requested: gic_unmask_irq on SGIs 0..7.
        for sgi in 0..8 {
            g.write(R, 0x1_0100, 4, 1 << sgi);
        }
        assert_eq!(g.read(R, 0x1_0100, 4), 0xff);
        // Timer PPI 27 (level): gic_configure_irq finds it already level; unmask.
        assert_eq!(g.read(R, 0x1_0c04, 4) & (2 << ((27 - 16) * 2)), 0);
        g.write(R, 0x1_0100, 4, 1 << 27);
        assert!(g.enabled(27));
        // virtio SPI 48 edge-rising: the ICFGR write must stick, else -EINVAL.
        let off = 0xc00 + (48 / 16) * 4;
        let old = g.read(D, off, 4);
        let new = old | 2;
        g.write(D, off, 4, new);
        assert_eq!(g.read(D, off, 4), new);
        assert_eq!(g.edge_triggered(48), Some(true));
        g.write(D, 0x100 + 4, 4, 1 << (48 % 32));
        assert!(g.spi_enabled(48));
        assert!(!g.spi_enabled(49));
        // synchronize_irq polls ISACTIVER: must read inactive.
        assert_eq!(g.read(D, 0x300 + 4, 4) & (1 << 16), 0);
        // And the VMM can now deliver it.
        assert!(g.raise(48));
        assert_eq!(
            g.take_pending(),
            Some(PendingIrq {
                intid: 48,
                priority: 0xa0,
                group1: true
            })
        );
        assert_eq!(g.take_pending(), None);
    }

    #[test]
    fn typer_tracks_spi_count() {
        let it = |n| Vgic::new(n, 0).unwrap().read(D, 4, 4) & 0x1f;
        assert_eq!(it(0), 0);
        assert_eq!(it(1), 1);
        assert_eq!(it(32), 1);
        assert_eq!(it(33), 2);
        assert_eq!(it(64), 2);
        assert_eq!(it(MAX_SPIS), 31);
        assert_eq!(
            Vgic::new(MAX_SPIS + 1, 0).unwrap_err(),
            VgicError::TooManySpis { requested: 989 }
        );
        assert!(VgicError::TooManySpis { requested: 989 }.to_string().contains("988"));
    }

    #[test]
    fn id_registers() {
        let g = gic();
        let ids: Vec<u64> = (0..12).map(|i| g.read(D, 0xffd0 + i * 4, 4)).collect();
        assert_eq!(ids, [0x44, 0, 0, 0, 0x92, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(g.read(R, 0xffe0, 4), 0x93);
        assert_eq!(g.read(R, 0xffe8, 4), 0x3b);
        assert_eq!(g.read(R, 0x4, 4), u64::from(IIDR));
    }

    #[test]
    fn ctlr_keeps_only_enable_bits() {
        let mut g = gic();
        assert_eq!(g.read(D, 0, 4), 0x50, "ARE and DS at reset, groups disabled");
        g.write(D, 0, 4, 0xffff_ffff);
        assert_eq!(g.read(D, 0, 4), 0x53);
        g.write(D, 0, 4, 0);
        assert_eq!(g.read(D, 0, 4), 0x50, "ARE cannot be turned off");
    }

    #[test]
    fn spi_enable_needs_group_enable() {
        let mut g = gic();
        g.write(D, 0x104, 4, 1 << 1); // enable INTID 33 (PL011)
        assert!(g.enabled(33));
        assert!(!g.spi_enabled(33), "distributor disabled");
        g.write(D, 0, 4, 0b10); // group 1 only
        assert!(!g.spi_enabled(33), "INTID 33 is still group 0");
        g.write(D, 0x84, 4, 1 << 1);
        assert!(g.spi_enabled(33));
        g.write(D, 0x184, 4, 1 << 1);
        assert!(!g.spi_enabled(33));
        // Not SPIs.
        g.write(R, 0x1_0100, 4, u64::MAX);
        assert!(!g.spi_enabled(27));
        assert!(!g.spi_enabled(96));
        assert!(!g.spi_enabled(u32::MAX));
    }

    #[test]
    fn distributor_banked_word_zero_is_raz_wi() {
        let mut g = gic();
        for base in [0x080, 0x100, 0x200, 0x300] {
            g.write(D, base, 4, u64::MAX);
            assert_eq!(g.read(D, base, 4), 0, "GICD offset {base:#x}");
        }
        g.write(D, 0x400, 4, u64::MAX);
        assert_eq!(g.read(D, 0x400, 4), 0);
        assert_eq!(g.priority(0), Some(0));
        g.write(D, 0xc04, 4, u64::MAX);
        assert_eq!(g.read(D, 0xc04, 4), 0);
        assert!(!g.enabled(5));
    }

    #[test]
    fn set_clear_pairs() {
        let mut g = gic();
        g.write(D, 0x204, 4, 0x5);
        g.write(D, 0x284, 4, 0x1);
        assert_eq!(g.read(D, 0x204, 4), 0x4);
        assert_eq!(g.read(D, 0x284, 4), 0x4, "ICPENDR reads the pending state too");
        g.write(D, 0x304, 4, 0xf0);
        g.write(D, 0x384, 4, 0x30);
        assert_eq!(g.read(D, 0x304, 4), 0xc0);
        g.write(R, 0x1_0200, 4, 0x8000_0001);
        g.write(R, 0x1_0280, 4, 0x1);
        assert_eq!(g.read(R, 0x1_0200, 4), 0x8000_0000);
        assert!(g.pending(31));
    }

    #[test]
    fn unimplemented_spis_are_raz_wi() {
        let mut g = gic(); // INTIDs 32..96
        g.write(D, 0x10c, 4, u64::MAX); // INTIDs 96..127
        assert_eq!(g.read(D, 0x10c, 4), 0);
        let mut small = Vgic::new(40, 0).unwrap(); // INTIDs 32..72
        small.write(D, 0x108, 4, u64::MAX); // INTIDs 64..95
        assert_eq!(small.read(D, 0x108, 4), 0xff);
        small.write(D, 0x400 + 70, 1, 0x11);
        small.write(D, 0x400 + 72, 4, u64::MAX);
        assert_eq!(small.read(D, 0x400 + 68, 4), 0x0011_0000);
        assert_eq!(small.read(D, 0x400 + 72, 4), 0);
        assert!(!small.raise(72));
        assert!(small.raise(71));
        assert_eq!(small.priority(72), None);
        small.write(D, 0x6000 + 72 * 8, 8, 1);
        assert_eq!(small.read(D, 0x6000 + 72 * 8, 8), 0);
    }

    #[test]
    fn priority_byte_and_word_access() {
        let mut g = gic();
        g.write(D, 0x400 + 48, 4, 0x4433_2211);
        assert_eq!(g.read(D, 0x400 + 49, 1), 0x22);
        g.write(D, 0x400 + 51, 1, 0xff);
        assert_eq!(g.read(D, 0x400 + 48, 4), 0xff33_2211);
        assert_eq!(g.priority(51), Some(0xff));
        // Half-word and double-word accesses are not allowed on IPRIORITYR.
        g.write(D, 0x400 + 48, 2, 0);
        g.write(D, 0x400 + 48, 8, 0);
        assert_eq!(g.read(D, 0x400 + 48, 2), 0);
        assert_eq!(g.read(D, 0x400 + 48, 4), 0xff33_2211);
        // SGI frame: INTIDs 0..31 only.
        g.write(R, 0x1_0400 + 27, 1, 0x80);
        assert_eq!(g.priority(27), Some(0x80));
        assert_eq!(g.read(R, 0x1_0420, 4), 0);
    }

    #[test]
    fn icfgr_rules() {
        let mut g = gic();
        assert_eq!(g.read(R, 0x1_0c00, 4), 0xaaaa_aaaa, "SGIs are edge");
        g.write(R, 0x1_0c00, 4, 0);
        assert_eq!(g.read(R, 0x1_0c00, 4), 0xaaaa_aaaa, "read-only");
        // Only the odd bit of each field is kept.
        g.write(R, 0x1_0c04, 4, 0xffff_ffff);
        assert_eq!(g.read(R, 0x1_0c04, 4), 0xaaaa_aaaa);
        g.write(D, 0xc08, 4, 0x5555_5555);
        assert_eq!(g.read(D, 0xc08, 4), 0);
        g.write(D, 0xc14, 4, 0x8000_0002); // INTIDs 80..95: 80 and 95 edge
        assert_eq!(g.edge_triggered(80), Some(true));
        assert_eq!(g.edge_triggered(95), Some(true));
        assert_eq!(g.edge_triggered(81), Some(false));
        assert_eq!(g.edge_triggered(96), None);
    }

    #[test]
    fn irouter_64_and_32_bit() {
        let mut g = gic();
        let off = 0x6000 + 40 * 8;
        g.write(D, off, 8, 0xffff_ffff_ffff_ffff);
        assert_eq!(g.read(D, off, 8), 0xff_00ff_ffff, "IRM and reserved bits are RES0");
        g.write(D, off, 4, 0x0001_0203);
        g.write(D, off + 4, 4, 0x07);
        assert_eq!(g.read(D, off, 8), 0x07_0001_0203);
        assert_eq!(g.read(D, off, 4), 0x0001_0203);
        assert_eq!(g.read(D, off + 4, 4), 0x07);
        // INTIDs below 32 have no IROUTER.
        g.write(D, 0x6000 + 8, 8, 1);
        assert_eq!(g.read(D, 0x6000 + 8, 8), 0);
    }

    #[test]
    fn gicr_typer_halves_and_affinity() {
        let g = Vgic::new(32, 0x01_0002_0304).unwrap();
        let t = g.read(R, 0x8, 8);
        assert_eq!(t >> 32, 0x0102_0304, "Aff3.Aff2.Aff1.Aff0");
        assert_eq!(g.read(R, 0x8, 4), t & 0xffff_ffff);
        assert_eq!(g.read(R, 0xc, 4), t >> 32);
        assert_eq!(g.read(R, 0xa, 2), 0, "half-word: RAZ");
    }

    #[test]
    fn waker_handshake_both_ways() {
        let mut g = gic();
        assert_eq!(g.read(R, 0x14, 4), 0b110, "asleep at reset");
        g.write(R, 0x14, 4, 0);
        assert_eq!(g.read(R, 0x14, 4), 0);
        g.write(R, 0x14, 4, 0b10);
        assert_eq!(g.read(R, 0x14, 4), 0b110, "ChildrenAsleep follows");
        g.write(R, 0x14, 4, 0b100);
        assert_eq!(g.read(R, 0x14, 4), 0, "ChildrenAsleep is read-only");
        g.write(R, 0x14, 1, 0b10);
        assert_eq!(g.read(R, 0x14, 4), 0, "byte write ignored");
    }

    #[test]
    fn take_pending_orders_by_priority_then_intid() {
        let mut g = gic();
        g.write(D, 0, 4, 0b11);
        g.write(D, 0x84, 4, u64::MAX);
        g.write(D, 0x88, 4, u64::MAX);
        g.write(D, 0x104, 4, u64::MAX);
        g.write(D, 0x108, 4, u64::MAX);
        g.write(D, 0x400 + 50, 1, 0x40);
        g.write(D, 0x400 + 70, 1, 0x20);
        g.write(D, 0x400 + 60, 1, 0x40);
        for i in [60, 50, 70] {
            g.raise(i);
        }
        let order: Vec<u32> = core::iter::from_fn(|| g.take_pending()).map(|p| p.intid).collect();
        assert_eq!(order, [70, 50, 60]);
        // A disabled SPI stays pending until it is enabled.
        g.write(D, 0x184, 4, 1 << 2); // disable 34
        g.raise(34);
        assert_eq!(g.take_pending(), None);
        assert!(g.pending(34));
        g.write(D, 0x104, 4, 1 << 2);
        assert_eq!(g.take_pending().map(|p| p.intid), Some(34));
        // Guest software pend through ISPENDR is delivered the same way.
        g.write(D, 0x204, 4, 1 << 3);
        assert_eq!(g.take_pending().map(|p| p.intid), Some(35));
        assert!(!g.raise(27), "PPIs are the kernel's");
    }

    #[test]
    fn hostile_accesses_never_panic() {
        let mut g = gic();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let sizes = [0u8, 1, 2, 3, 4, 5, 7, 8, 9, 16, 255];
        for i in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let region = if x & 1 == 0 { D } else { R };
            let offset = match i % 4 {
                0 => x >> 40,            // anywhere in a large range
                1 => (x >> 8) & 0x1ffff, // in or near the frames
                2 => u64::MAX - (x & 0xff),
                _ => (x >> 8) & 0xfffc,
            };
            let size = sizes[(x >> 3) as usize % sizes.len()];
            if x & 2 == 0 {
                g.write(region, offset, size, x.rotate_left(17));
            } else {
                let v = g.read(region, offset, size);
                if matches!(size, 1 | 2 | 4) {
                    assert_eq!(v >> (u32::from(size) * 8), 0, "read wider than the access");
                }
                if !matches!(size, 1 | 2 | 4 | 8) {
                    assert_eq!(v, 0);
                }
            }
            let _ = g.take_pending();
        }
        // Whatever was written, the invariants hold.
        assert_ne!(g.read(D, 0, 4) & 0x50, 0);
        assert_eq!(g.read(R, 0x1_0c00, 4), 0xaaaa_aaaa);
        assert_eq!(g.read(D, 0xffe8, 4), 0x3b);
    }

    #[test]
    fn misaligned_accesses_are_raz_wi() {
        let mut g = gic();
        g.write(D, 0x102, 4, u64::MAX);
        assert_eq!(g.read(D, 0x104, 4), 0);
        assert_eq!(g.read(D, 0x1, 4), 0);
        assert_eq!(g.read(R, 0xc, 8), 0, "GICR_TYPER needs 8-byte alignment for readq");
    }
}
