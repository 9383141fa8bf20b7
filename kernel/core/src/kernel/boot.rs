//! Boot: every thread built from the boot-information blob.

use vcpos_abi::bootinfo::{BootInfo, THREAD_VCPU};
use vcpos_abi::vcpu::SPSR_EL1H_MASKED;

use super::{IrqRoute, Kernel, MAX_IRQ_ROUTES, MAX_THREADS};
use crate::cspace::{Cap, ThreadIndex};
use crate::platform::Platform;
use crate::thread::{Tcb, ThreadKind, ThreadState, SPSR_EL0};
use crate::vspace::{self, Stage, TablePool};

use super::schedule::us_to_ticks;

/// Why boot failed (the builder should have prevented all of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// More PDs than [`MAX_THREADS`].
    TooManyPds,
    /// More IRQs than [`MAX_IRQ_ROUTES`].
    TooManyIrqs,
    /// A capability record is malformed.
    BadCap {
        /// PD index.
        pd: usize,
    },
    /// A map could not be made.
    Map {
        /// PD index.
        pd: usize,
        /// Why.
        error: vspace::MapError,
    },
}

impl Kernel {
    /// Sets up every PD from the boot-information blob: capability spaces, address
    /// spaces (built in the blob's page-table pool), IRQ routes, initial registers.
    /// All PDs start ready. The caller has already zeroed the blob's zero ranges.
    pub fn boot(&mut self, info: &BootInfo<'_>, plat: &mut impl Platform) -> Result<(), BootError> {
        let n = info.num_pds();
        if n > MAX_THREADS {
            return Err(BootError::TooManyPds);
        }
        let hz = plat.counter_hz();
        let mut pool = TablePool::new(info.header.pt_pool_paddr, info.header.pt_pool_size);
        for i in 0..n {
            let d = info.pd(i);
            let stage = if d.kind == THREAD_VCPU { Stage::Two } else { Stage::One };
            let root = pool.alloc(plat).map_err(|error| BootError::Map { pd: i, error })?;
            for m in info.pd_maps(&d) {
                vspace::map(stage, root, m.vaddr, m.paddr, m.size, m.attrs, &mut pool, plat)
                    .map_err(|error| BootError::Map { pd: i, error })?;
            }
            let t = &mut self.tcbs[i];
            *t = Tcb::new();
            t.name = d.name;
            t.priority = d.priority.min(vcpos_abi::MAX_PD_PRIORITY);
            t.budget = us_to_ticks(d.budget_us.max(vcpos_abi::MIN_BUDGET_US), hz);
            t.period = us_to_ticks(d.period_us.max(d.budget_us), hz).max(t.budget);
            t.remaining = t.budget;
            t.passive = d.passive != 0;
            t.parent = (d.parent != vcpos_abi::bootinfo::NO_PARENT).then_some(d.parent);
            t.child_id = d.child_id;
            t.ipc_buffer = d.ipc_buffer_paddr;
            t.vspace_root = root;
            t.asid = i as u16 + 1;
            t.ctx.pc = d.entry;
            t.ctx.sp = d.stack_top;
            t.ctx.spsr = SPSR_EL0;
            for c in info.pd_caps(&d) {
                let cap = Cap::from_desc(&c, n).ok_or(BootError::BadCap { pd: i })?;
                if !t.cspace.insert(c.slot as usize, cap) {
                    return Err(BootError::BadCap { pd: i });
                }
            }
            if d.kind == THREAD_VCPU {
                // A vCPU waits, stopped, until its VMM restarts it (Microkit semantics).
                t.kind = ThreadKind::Vcpu;
                t.ctx.spsr = SPSR_EL1H_MASKED;
                t.state = ThreadState::Stopped;
            } else {
                t.state = ThreadState::Ready;
            }
        }
        self.num_threads = n;
        let num_irqs = info.header.num_irqs as usize;
        if num_irqs > MAX_IRQ_ROUTES {
            return Err(BootError::TooManyIrqs);
        }
        for i in 0..num_irqs {
            let r = info.irq(i);
            self.irqs[i] = Some(IrqRoute {
                irq: r.irq,
                pd: r.pd,
                badge: r.badge,
            });
            plat.irq_unmask(r.irq);
        }
        for i in 0..n {
            if self.tcbs[i].state == ThreadState::Ready {
                self.ready.push_back(&mut self.tcbs, i as ThreadIndex);
            }
        }
        self.charged_at = plat.now();
        Ok(())
    }
}
