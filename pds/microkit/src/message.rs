//! Messages: `MessageInfo`, message-register access, and decoding of fault messages.
//!
//! A message is a label, a count, and that many message registers (MRs) in the IPC
//! buffer. The `with_msg_*` helpers hand the closure a copy of all 64 MRs (and write
//! the `_mut` copy back afterwards), so no reference into the IPC buffer ever lives
//! across a syscall.

use core::fmt;

use vcpos_abi::fault::{label, user_exception, vm_fault};
use vcpos_abi::msg::{MsgInfo, MAX_MRS};

use crate::ipc;

/// A message label.
pub type MessageLabel = u64;
/// The value of one message register.
pub type MessageRegisterValue = u64;

/// Number of message registers.
pub const NUM_MESSAGE_REGISTERS: usize = MAX_MRS;

/// A message's label and the number of message registers it carries.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageInfo {
    inner: MsgInfo,
}

impl MessageInfo {
    /// Bits available for a label.
    pub const LABEL_WIDTH: usize = 52;

    /// A message with `label` and `count` message registers. Panics if `count > 64`
    /// or the label does not fit in 52 bits.
    #[track_caller]
    pub fn new(label: MessageLabel, count: usize) -> Self {
        assert!(count <= MAX_MRS, "message count {count} exceeds {MAX_MRS} registers");
        assert!(label <= MsgInfo::MAX_LABEL, "message label {label:#x} exceeds 52 bits");
        MessageInfo {
            inner: MsgInfo::new(label, count),
        }
    }

    /// The label.
    pub fn label(&self) -> MessageLabel {
        self.inner.label()
    }

    /// Bits available for a label.
    pub const fn label_width() -> usize {
        Self::LABEL_WIDTH
    }

    /// The number of message registers.
    pub fn count(&self) -> usize {
        self.inner.count()
    }

    /// Decodes a fault message (as received by [`crate::Handler::fault`]) from its
    /// label and the message registers.
    pub fn fault(&self) -> Fault {
        Fault::decode(self.label(), ipc::read_mr)
    }

    /// The ABI encoding.
    #[doc(hidden)]
    pub const fn from_inner(inner: MsgInfo) -> Self {
        MessageInfo { inner }
    }

    /// The ABI encoding.
    #[doc(hidden)]
    pub const fn into_inner(self) -> MsgInfo {
        self.inner
    }
}

impl fmt::Debug for MessageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageInfo")
            .field("label", &self.label())
            .field("count", &self.count())
            .finish()
    }
}

/// Reads message register `i`. Panics if `i >= 64`.
#[track_caller]
pub fn get_mr(i: usize) -> MessageRegisterValue {
    ipc::read_mr(i)
}

/// Sets message register `i`. Panics if `i >= 64`.
#[track_caller]
pub fn set_mr(i: usize, value: MessageRegisterValue) {
    ipc::write_mr(i, value);
}

fn load_mrs() -> [u64; MAX_MRS] {
    core::array::from_fn(ipc::read_mr)
}

fn store_mrs(mrs: &[u64; MAX_MRS]) {
    for (i, v) in mrs.iter().enumerate() {
        ipc::write_mr(i, *v);
    }
}

/// Calls `f` with (a copy of) the 64 message registers.
pub fn with_msg_regs<T>(f: impl FnOnce(&[MessageRegisterValue]) -> T) -> T {
    f(&load_mrs())
}

/// Calls `f` with the 64 message registers and writes back what it leaves there. Do
/// not make syscalls inside `f`: its changes are stored after it returns.
pub fn with_msg_regs_mut<T>(f: impl FnOnce(&mut [MessageRegisterValue]) -> T) -> T {
    let mut mrs = load_mrs();
    let r = f(&mut mrs);
    store_mrs(&mrs);
    r
}

fn words_to_bytes(mrs: &[u64; MAX_MRS]) -> [u8; MAX_MRS * 8] {
    let mut bytes = [0u8; MAX_MRS * 8];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(mrs) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    bytes
}

/// Calls `f` with the message registers as 512 bytes (little-endian words).
pub fn with_msg_bytes<T>(f: impl FnOnce(&[u8]) -> T) -> T {
    f(&words_to_bytes(&load_mrs()))
}

/// Calls `f` with the message registers as 512 mutable bytes and writes them back.
/// Do not make syscalls inside `f`.
pub fn with_msg_bytes_mut<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    let mut bytes = words_to_bytes(&load_mrs());
    let r = f(&mut bytes);
    let mut mrs = [0u64; MAX_MRS];
    for (w, chunk) in mrs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *w = u64::from_le_bytes(word);
    }
    store_mrs(&mrs);
    r
}

/// A decoded fault message (vcpos's own type; labels and registers as in
/// `vcpos_abi::fault`, which follows seL4's ARM numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A data or instruction abort.
    VmFault {
        /// PC of the faulting instruction.
        ip: u64,
        /// The address that could not be accessed.
        addr: u64,
        /// True for an instruction fetch, false for a data access.
        prefetch: bool,
        /// Fault status (the ESR value).
        fsr: u64,
    },
    /// Any other synchronous exception (undefined instruction, alignment, ...).
    UserException {
        /// PC of the faulting instruction.
        ip: u64,
        /// Stack pointer.
        sp: u64,
        /// Saved program status.
        spsr: u64,
        /// Exception class (ESR.EC).
        ec: u64,
        /// Syndrome (ESR.ISS).
        iss: u64,
    },
    /// A fault of another kind; only its label is known.
    Other {
        /// The fault label.
        label: u64,
    },
}

impl Fault {
    /// Decodes a fault from its label and a message-register reader.
    pub fn decode(fault_label: u64, mr: impl Fn(usize) -> u64) -> Fault {
        match fault_label {
            label::VM_FAULT => Fault::VmFault {
                ip: mr(vm_fault::IP),
                addr: mr(vm_fault::ADDR),
                prefetch: mr(vm_fault::PREFETCH_FAULT) != 0,
                fsr: mr(vm_fault::FSR),
            },
            label::USER_EXCEPTION => Fault::UserException {
                ip: mr(user_exception::FAULT_IP),
                sp: mr(user_exception::SP),
                spsr: mr(user_exception::SPSR),
                ec: mr(user_exception::NUMBER),
                iss: mr(user_exception::CODE),
            },
            other => Fault::Other { label: other },
        }
    }

    /// The fault label.
    pub fn label(&self) -> u64 {
        match self {
            Fault::VmFault { .. } => label::VM_FAULT,
            Fault::UserException { .. } => label::USER_EXCEPTION,
            Fault::Other { label } => *label,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::VmFault {
                ip,
                addr,
                prefetch,
                fsr,
            } => write!(
                f,
                "VM fault ({}) at address {addr:#x}, pc {ip:#x}, fsr {fsr:#x}",
                if prefetch { "instruction fetch" } else { "data access" }
            ),
            Fault::UserException { ip, sp, spsr, ec, iss } => {
                write!(
                    f,
                    "user exception ec {ec:#x} iss {iss:#x} at pc {ip:#x}, sp {sp:#x}, spsr {spsr:#x}"
                )
            }
            Fault::Other { label } => write!(f, "{} (label {label})", vcpos_abi::fault::label_name(label)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake;
    use std::string::ToString;

    #[test]
    fn message_info_round_trips_and_defaults() {
        let m = MessageInfo::new(0x1234, 7);
        assert_eq!((m.label(), m.count()), (0x1234, 7));
        let d = MessageInfo::default();
        assert_eq!((d.label(), d.count()), (0, 0));
        assert_eq!(MessageInfo::from_inner(m.into_inner()), m);
        assert_eq!(MessageInfo::new(MsgInfo::MAX_LABEL, 64).label(), MsgInfo::MAX_LABEL);
    }

    #[test]
    #[should_panic(expected = "exceeds 64 registers")]
    fn message_info_rejects_long_messages() {
        let _ = MessageInfo::new(0, 65);
    }

    #[test]
    fn message_registers_round_trip() {
        fake::reset();
        set_mr(0, 11);
        set_mr(63, 99);
        assert_eq!((get_mr(0), get_mr(63)), (11, 99));
        with_msg_regs_mut(|mrs| mrs[1] = mrs[0] + 1);
        assert_eq!(get_mr(1), 12);
        assert_eq!(with_msg_regs(|mrs| (mrs.len(), mrs[63])), (64, 99));
        with_msg_bytes_mut(|b| b[16] = 0xab);
        assert_eq!(get_mr(2), 0xab);
        assert_eq!(with_msg_bytes(|b| (b.len(), b[0], b[8])), (512, 11, 12));
    }

    #[test]
    #[should_panic(expected = "message register 64 out of range")]
    fn message_register_index_is_checked() {
        set_mr(64, 0);
    }

    #[test]
    fn decodes_vm_fault_from_ipc_buffer() {
        fake::reset();
        for (i, v) in [0x20_1234, 0xdead_0000, 0, 0x9200_0046].into_iter().enumerate() {
            set_mr(i, v);
        }
        let f = MessageInfo::new(label::VM_FAULT, vm_fault::LENGTH).fault();
        assert_eq!(
            f,
            Fault::VmFault {
                ip: 0x20_1234,
                addr: 0xdead_0000,
                prefetch: false,
                fsr: 0x9200_0046
            }
        );
        assert_eq!(f.label(), label::VM_FAULT);
        assert_eq!(
            f.to_string(),
            "VM fault (data access) at address 0xdead0000, pc 0x201234, fsr 0x92000046"
        );
    }

    #[test]
    fn decodes_user_exception_and_others() {
        let mrs = [0x20_0010, 0xff_ffff_d000, 0x0, 0x00, 0x0];
        let f = Fault::decode(label::USER_EXCEPTION, |i| mrs[i]);
        assert_eq!(
            f,
            Fault::UserException {
                ip: 0x20_0010,
                sp: 0xff_ffff_d000,
                spsr: 0,
                ec: 0,
                iss: 0
            }
        );
        let f = Fault::decode(label::VM_FAULT, |i| [1, 2, 1, 3][i]);
        assert_eq!(
            f,
            Fault::VmFault {
                ip: 1,
                addr: 2,
                prefetch: true,
                fsr: 3
            }
        );
        assert_eq!(
            Fault::decode(label::TIMEOUT, |_| 0),
            Fault::Other { label: label::TIMEOUT }
        );
        assert_eq!(Fault::Other { label: 5 }.to_string(), "timeout (label 5)");
    }
}
