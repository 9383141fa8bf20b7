//! Control syscalls: a parent's child TCBs, IRQ acknowledgement, debug output and
//! the time.

use vcpos_abi::counters::Counters;
use vcpos_abi::msg::{MsgInfo, DEBUG_AREA_OFFSET, DEBUG_AREA_SIZE};
use vcpos_abi::syscall::Error;

use super::{Args, Kernel};
use crate::cspace::{Cap, ThreadIndex};
use crate::platform::Platform;
use crate::thread::ThreadState;

impl Kernel {
    /// `DebugPut`: print `a1` bytes of the caller's IPC-buffer debug area.
    pub(super) fn sys_debug_put(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::DebugConsole = args.cap else {
            return Err(Error::InvalidCapability);
        };
        let len = usize::try_from(args.a1)
            .ok()
            .filter(|&l| l <= DEBUG_AREA_SIZE)
            .ok_or(Error::InvalidArgument)?;
        let base = self.tcbs[t as usize].ipc_buffer + DEBUG_AREA_OFFSET as u64;
        let mut chunk = [0u8; 64];
        for start in (0..len).step_by(chunk.len()) {
            let n = (len - start).min(chunk.len());
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = plat.read_byte(base + (start + i) as u64);
            }
            plat.console_write(&chunk[..n]);
        }
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `IrqAck`: unmask the IRQ.
    pub(super) fn sys_irq_ack(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::IrqHandler { irq } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        plat.irq_unmask(irq);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `TimeNow`: the counter frequency and value.
    pub(super) fn sys_time_now(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Input = args.cap else {
            return Err(Error::InvalidCapability);
        };
        let (hz, now) = (plat.counter_hz(), plat.now());
        self.set_ret(t, 0, hz, now);
        Ok(())
    }

    /// `CountCopied`: the caller copied `a1` more bytes of I/O data.
    pub(super) fn sys_count_copied(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Input = args.cap else {
            return Err(Error::InvalidCapability);
        };
        let c = &mut self.tcbs[t as usize].counters;
        c.bytes_copied = c.bytes_copied.saturating_add(args.a1);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `ThreadCounters`: a thread's event counters (and the kernel's) into the
    /// caller's message registers. The capability says which thread: a child TCB or
    /// vCPU names it, the input names the caller, the debug console lets `a1` name
    /// any thread.
    pub(super) fn sys_thread_counters(
        &mut self,
        plat: &mut impl Platform,
        t: ThreadIndex,
        args: Args,
    ) -> Result<(), Error> {
        let target = match args.cap {
            Cap::Input => t,
            Cap::Tcb { pd } => pd,
            Cap::Vcpu { thread } => thread,
            Cap::DebugConsole => ThreadIndex::try_from(args.a1)
                .ok()
                .filter(|&i| (i as usize) < self.num_threads)
                .ok_or(Error::InvalidArgument)?,
            _ => return Err(Error::InvalidCapability),
        };
        let mut c = Counters {
            thread: self.tcbs[target as usize].counters,
            kernel: self.counters,
        };
        if Some(target) == self.current {
            // Include the run so far (not yet charged).
            c.thread.time_run += plat.now().saturating_sub(self.charged_at);
        }
        let ipc = self.tcbs[t as usize].ipc_buffer;
        for (i, w) in c.to_words().iter().enumerate() {
            plat.write_word(ipc + 8 * i as u64, *w);
        }
        self.set_ret(t, 0, target as u64, MsgInfo::new(0, Counters::WORDS).0);
        Ok(())
    }

    /// `TcbRestart`: set the child's PC and make it runnable.
    pub(super) fn sys_tcb_restart(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Tcb { pd } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.detach(pd);
        self.tcbs[pd as usize].ctx.pc = args.a1;
        self.make_ready(pd);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `TcbStop`: stop the child.
    pub(super) fn sys_tcb_stop(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Tcb { pd } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.detach(pd);
        self.tcbs[pd as usize].state = ThreadState::Stopped;
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `TcbResume`: make a stopped child runnable again.
    pub(super) fn sys_tcb_resume(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Tcb { pd } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        if self.tcbs[pd as usize].state != ThreadState::Stopped {
            return Err(Error::IllegalOperation);
        }
        self.make_ready(pd);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }
}
