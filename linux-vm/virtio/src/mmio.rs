//! The virtio-mmio transport, non-legacy (Version 2), virtio 1.2 §4.2: the register
//! file a driver sees in the device's MMIO window, feature negotiation, status and
//! reset handling, queue setup and notification, and the interrupt status.
//!
//! The VMM owns one [`MmioTransport`] per virtio device and forwards every guest
//! access in the device's window to [`MmioTransport::read`] / [`MmioTransport::write`]
//! with the offset inside the window. When a call returns `true` the VMM injects the
//! device's SPI. Device-model specifics live behind the [`Device`] trait.

use crate::error::GuestError;
use crate::memory::GuestMemory;
use crate::queue::Queue;
use alloc::vec::Vec;
use bitflags::bitflags;

/// `MagicValue`: "virt" in little-endian (virtio 1.2 §4.2.2).
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// `Version` of the non-legacy interface (virtio 1.2 §4.2.2).
pub const MMIO_VERSION: u32 = 2;
/// `VendorID` this transport reports: "vcpo" in little-endian.
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"vcpo");
/// Size of a device's MMIO window: control registers plus up to 256 bytes of
/// device configuration.
pub const MMIO_WINDOW_SIZE: u64 = 0x200;

/// Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register Layout").
pub mod reg {
    /// `MagicValue`: "virt".
    pub const MAGIC_VALUE: u64 = 0x000;
    /// `Version`: 2 (non-legacy).
    pub const VERSION: u64 = 0x004;
    /// `DeviceID`: the device type.
    pub const DEVICE_ID: u64 = 0x008;
    /// `VendorID`.
    pub const VENDOR_ID: u64 = 0x00c;
    /// `DeviceFeatures`: 32 feature bits, selected by `DeviceFeaturesSel`.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// `DeviceFeaturesSel`: which 32 feature bits `DeviceFeatures` shows.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// `DriverFeatures`: 32 feature bits the driver accepts, selected by `DriverFeaturesSel`.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// `DriverFeaturesSel`.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// `QueueSel`: the queue the queue registers are about.
    pub const QUEUE_SEL: u64 = 0x030;
    /// `QueueNumMax`: the largest queue size the device takes.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// `QueueNum`: the queue size the driver chose.
    pub const QUEUE_NUM: u64 = 0x038;
    /// `QueueReady`.
    pub const QUEUE_READY: u64 = 0x044;
    /// `QueueNotify`: the driver has new buffers in this queue.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// `InterruptStatus`.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// `InterruptACK`.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// `Status`: the device status field.
    pub const STATUS: u64 = 0x070;
    /// `QueueDescLow`: descriptor table address, low 32 bits.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// `QueueDescHigh`.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// `QueueDriverLow`: driver (available) area address, low 32 bits.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// `QueueDriverHigh`.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// `QueueDeviceLow`: device (used) area address, low 32 bits.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// `QueueDeviceHigh`.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// `SHMSel`: shared memory region selector.
    pub const SHM_SEL: u64 = 0x0ac;
    /// `SHMLenLow`.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// `SHMLenHigh`.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// `SHMBaseLow`.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// `SHMBaseHigh`.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// `QueueReset`.
    pub const QUEUE_RESET: u64 = 0x0c0;
    /// `ConfigGeneration`: changes when the configuration space changes.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// Reserved feature bits defined by virtio 1.2 §6 that the transport may offer.
pub mod features {
    /// VIRTIO_F_RING_INDIRECT_DESC (never offered by this implementation).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// VIRTIO_F_RING_EVENT_IDX: always offered; with it the driver says after which
    /// used entry it wants an interrupt and the device after which available entry
    /// it wants a notification (fewer interrupts and exits than the flags).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// VIRTIO_F_VERSION_1: mandatory for non-legacy devices (§6); always offered.
    pub const VERSION_1: u64 = 1 << 32;
}

bitflags! {
    /// Device status field (virtio 1.2 §2.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct DeviceStatus: u8 {
        /// The guest found the device.
        const ACKNOWLEDGE = 1;
        /// The guest has a driver for it.
        const DRIVER = 2;
        /// The driver is set up; the device is live.
        const DRIVER_OK = 4;
        /// The driver accepted the features.
        const FEATURES_OK = 8;
        /// The device hit an error and needs a reset.
        const DEVICE_NEEDS_RESET = 0x40;
        /// The driver gave up on the device.
        const FAILED = 0x80;
    }
}

bitflags! {
    /// InterruptStatus / InterruptACK bits (virtio 1.2 §4.2.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Interrupts: u32 {
        /// A used buffer notification: some queue's used ring was updated.
        const USED_BUFFER = 1;
        /// A configuration change notification (also sent on DEVICE_NEEDS_RESET).
        const CONFIG_CHANGE = 2;
    }
}

/// What a [`Device::read_config`] whose configuration space is the bytes `config` does:
/// copies `config[offset .. offset + data.len()]` into `data`, or leaves `data` as it is
/// if that range is not inside `config`.
pub fn copy_config(config: &[u8], offset: usize, data: &mut [u8]) {
    if let Some(src) = offset.checked_add(data.len()).and_then(|end| config.get(offset..end)) {
        data.copy_from_slice(src);
    }
}

/// A device model behind the transport (console, block, network).
///
/// The transport owns the queues and hands them to the device in `notify` / `poll`;
/// hooks run only while the driver has set DRIVER_OK and the device does not need a
/// reset. A device reports guest mistakes as `Err(GuestError)` (never panics); the
/// transport then moves to DEVICE_NEEDS_RESET.
pub trait Device {
    /// Device ID (virtio 1.2 §5: 3 = console, 2 = block, 1 = network).
    fn device_id(&self) -> u32;

    /// Device-specific feature bits offered. The transport adds
    /// [`features::VERSION_1`].
    fn device_features(&self) -> u64;

    /// Number of virtqueues.
    fn num_queues(&self) -> usize;

    /// QueueNumMax of queue `index` (< `num_queues()`).
    fn queue_max_size(&self, index: usize) -> u16;

    /// Size of the device configuration space in bytes (at most 256).
    fn config_len(&self) -> usize;

    /// Copies configuration bytes `offset .. offset + data.len()` (in range, checked by
    /// the transport) into `data`, little-endian.
    fn read_config(&self, offset: usize, data: &mut [u8]);

    /// The driver wrote configuration bytes `offset .. offset + data.len()` (in range).
    fn write_config(&mut self, offset: usize, data: &[u8]);

    /// The driver set FEATURES_OK with `features` (already checked to be a subset of
    /// the offer, including VERSION_1). Return false to refuse the combination.
    fn features_accepted(&mut self, features: u64) -> bool {
        let _ = features;
        true
    }

    /// The driver notified queue `queue` (< `num_queues()`, ready). Return the
    /// interrupts to raise (normally [`Interrupts::USED_BUFFER`] if a used element was
    /// pushed and the driver did not suppress it).
    fn notify(&mut self, queue: u16, queues: &mut [Queue], mem: &mut dyn GuestMemory)
        -> Result<Interrupts, GuestError>;

    /// Work that does not come from the guest (console input, a completion from an
    /// I/O PD). Called by [`MmioTransport::poll`].
    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let _ = (queues, mem);
        Ok(Interrupts::empty())
    }

    /// Device reset (virtio 1.2 §2.4): forget anything tied to the driver's queues
    /// and negotiated features. A device with requests in flight (e.g. at an I/O PD)
    /// must drop their chains: a completion arriving after the reset must not be
    /// pushed, since the driver may have set up new rings with reused head indices.
    fn reset(&mut self);
}

/// The register state of one virtio-mmio device plus its device model `D`.
#[derive(Debug)]
pub struct MmioTransport<D: Device> {
    device: D,
    queues: Vec<Queue>,
    status: DeviceStatus,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// The driver set a bit in a feature window above 63, which nothing offers.
    driver_features_unknown: bool,
    queue_sel: u32,
    interrupt_status: Interrupts,
    config_generation: u32,
    last_error: Option<GuestError>,
}

impl<D: Device> MmioTransport<D> {
    /// A transport in the reset state around `device`.
    pub fn new(device: D) -> Self {
        let queues = (0..device.num_queues())
            .map(|i| {
                let index = u16::try_from(i).unwrap_or(u16::MAX);
                Queue::new(index, device.queue_max_size(i))
            })
            .collect();
        Self {
            device,
            queues,
            status: DeviceStatus::empty(),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_unknown: false,
            queue_sel: 0,
            interrupt_status: Interrupts::empty(),
            config_generation: 0,
            last_error: None,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, mutable (e.g. to push console input before [`Self::poll`]).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The queues (index = queue number).
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// Current device status.
    pub fn status(&self) -> DeviceStatus {
        self.status
    }

    /// Features both offered and accepted by the driver (valid once FEATURES_OK).
    pub fn negotiated_features(&self) -> u64 {
        self.driver_features
    }

    /// Feature bits the transport offers: the device's plus VERSION_1 and
    /// RING_EVENT_IDX.
    pub fn offered_features(&self) -> u64 {
        self.device.device_features() | features::VERSION_1 | features::RING_EVENT_IDX
    }

    /// Whether the device processes queues: DRIVER_OK set and no pending reset.
    pub fn is_active(&self) -> bool {
        self.status.contains(DeviceStatus::DRIVER_OK) && !self.status.contains(DeviceStatus::DEVICE_NEEDS_RESET)
    }

    /// Current InterruptStatus. Non-empty means the interrupt line is asserted
    /// (for a VMM modelling the SPI as level-triggered).
    pub fn interrupt_status(&self) -> Interrupts {
        self.interrupt_status
    }

    /// The most recent guest error (fatal or ignored), cleared by this call; for the
    /// VMM's log.
    pub fn take_error(&mut self) -> Option<GuestError> {
        self.last_error.take()
    }

    /// Handles a guest read of `size` bytes at `offset` in the device's window.
    /// Returns the value (zero-extended); forbidden accesses read as 0.
    pub fn read(&mut self, offset: u64, size: u8) -> u32 {
        if offset >= reg::CONFIG {
            return self.read_config(offset, size);
        }
        if size != 4 || !offset.is_multiple_of(4) {
            self.ignored(GuestError::RegisterAccess {
                offset,
                size,
                write: false,
            });
            return 0;
        }
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => {
                let offered = self.offered_features();
                match self.device_features_sel {
                    0 => offered as u32,
                    1 => (offered >> 32) as u32,
                    _ => 0,
                }
            }
            reg::QUEUE_NUM_MAX => self.selected().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.is_ready())),
            reg::INTERRUPT_STATUS => self.interrupt_status.bits(),
            reg::STATUS => u32::from(self.status.bits()),
            // No shared memory regions: length (and base) read as all ones
            // (virtio 1.2 §4.2.2, SHMLenLow/High).
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => self.config_generation,
            // Write-only and reserved registers, QueueReset (VIRTIO_F_RING_RESET is
            // not offered).
            _ => 0,
        }
    }

    /// Handles a guest write of `size` bytes of `value` at `offset` in the device's
    /// window. Returns true if an interrupt bit was set by this access: the VMM should
    /// then inject the device's SPI.
    #[must_use = "true means: inject the device's interrupt"]
    pub fn write(&mut self, offset: u64, size: u8, value: u32, mem: &mut dyn GuestMemory) -> bool {
        if offset >= reg::CONFIG {
            self.write_config(offset, size, value);
            return false;
        }
        if size != 4 || !offset.is_multiple_of(4) {
            self.ignored(GuestError::RegisterAccess {
                offset,
                size,
                write: true,
            });
            return false;
        }
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue_setup(offset, value),
            reg::QUEUE_READY => return self.write_queue_ready(value, mem),
            reg::QUEUE_NOTIFY => return self.queue_notify(value, mem),
            reg::INTERRUPT_ACK => {
                self.interrupt_status.remove(Interrupts::from_bits_truncate(value));
            }
            reg::STATUS => return self.write_status(value, mem),
            // SHMSel: any region number selects "no region". Read-only and reserved
            // registers ignore writes.
            _ => {}
        }
        false
    }

    /// Runs the device's asynchronous work (e.g. delivering console input) if the
    /// device is active. Returns true if the VMM should inject the SPI.
    #[must_use = "true means: inject the device's interrupt"]
    pub fn poll(&mut self, mem: &mut dyn GuestMemory) -> bool {
        if !self.is_active() {
            return false;
        }
        let result = self.device.poll(&mut self.queues, mem);
        self.device_result(result)
    }

    /// The device configuration changed (e.g. a console resize): bumps
    /// ConfigGeneration and, if DRIVER_OK, raises a configuration change interrupt
    /// (virtio 1.2 §2.5). Returns true if the VMM should inject the SPI.
    #[must_use = "true means: inject the device's interrupt"]
    pub fn config_changed(&mut self) -> bool {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status.contains(DeviceStatus::DRIVER_OK) {
            self.interrupt_status.insert(Interrupts::CONFIG_CHANGE);
            return true;
        }
        false
    }

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn ignored(&mut self, error: GuestError) {
        self.last_error = Some(error);
    }

    /// A fatal guest error: DEVICE_NEEDS_RESET, and if DRIVER_OK a configuration
    /// change notification (virtio 1.2 §2.1.2). Returns whether to interrupt.
    fn fail(&mut self, error: GuestError) -> bool {
        self.last_error = Some(error);
        self.status.insert(DeviceStatus::DEVICE_NEEDS_RESET);
        if self.status.contains(DeviceStatus::DRIVER_OK) {
            self.interrupt_status.insert(Interrupts::CONFIG_CHANGE);
            return true;
        }
        false
    }

    fn device_result(&mut self, result: Result<Interrupts, GuestError>) -> bool {
        match result {
            Ok(irq) => {
                let mut raise = false;
                if irq.contains(Interrupts::CONFIG_CHANGE) {
                    raise |= self.config_changed();
                }
                if irq.contains(Interrupts::USED_BUFFER) {
                    self.interrupt_status.insert(Interrupts::USED_BUFFER);
                    raise = true;
                }
                raise
            }
            Err(e) => self.fail(e),
        }
    }

    /// Checks a device-configuration access (virtio 1.2 §4.2.2.2: 1, 2 or 4 bytes,
    /// naturally aligned, inside the config space). Returns the config offset.
    fn config_range(&mut self, offset: u64, size: u8, write: bool) -> Option<usize> {
        let off = offset - reg::CONFIG;
        let ok = matches!(size, 1 | 2 | 4)
            && off.is_multiple_of(u64::from(size))
            && off + u64::from(size) <= self.device.config_len() as u64;
        if !ok {
            self.ignored(GuestError::ConfigAccess { offset, size, write });
            return None;
        }
        Some(off as usize)
    }

    fn read_config(&mut self, offset: u64, size: u8) -> u32 {
        let Some(off) = self.config_range(offset, size, false) else {
            return 0;
        };
        let mut bytes = [0u8; 4];
        self.device.read_config(off, &mut bytes[..usize::from(size)]);
        u32::from_le_bytes(bytes)
    }

    fn write_config(&mut self, offset: u64, size: u8, value: u32) {
        let Some(off) = self.config_range(offset, size, true) else {
            return;
        };
        let bytes = value.to_le_bytes();
        self.device.write_config(off, &bytes[..usize::from(size)]);
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status.contains(DeviceStatus::FEATURES_OK) {
            self.ignored(GuestError::FeaturesAfterFeaturesOk);
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32),
            _ => self.driver_features_unknown |= value != 0,
        }
    }

    fn write_queue_setup(&mut self, offset: u64, value: u32) {
        let sel = self.queue_sel;
        let Some(q) = self.queues.get_mut(sel as usize).filter(|q| !q.is_ready()) else {
            self.ignored(GuestError::QueueSetupRejected { queue: sel, offset });
            return;
        };
        let (desc, avail, used) = q.addresses();
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let high = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            reg::QUEUE_NUM => q.set_size(value),
            reg::QUEUE_DESC_LOW => q.set_desc_table(low(desc)),
            reg::QUEUE_DESC_HIGH => q.set_desc_table(high(desc)),
            reg::QUEUE_DRIVER_LOW => q.set_avail_ring(low(avail)),
            reg::QUEUE_DRIVER_HIGH => q.set_avail_ring(high(avail)),
            reg::QUEUE_DEVICE_LOW => q.set_used_ring(low(used)),
            reg::QUEUE_DEVICE_HIGH => q.set_used_ring(high(used)),
            _ => {}
        }
    }

    fn write_queue_ready(&mut self, value: u32, mem: &mut dyn GuestMemory) -> bool {
        let sel = self.queue_sel;
        let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
        let Some(q) = self.queues.get_mut(sel as usize) else {
            self.ignored(GuestError::QueueSetupRejected {
                queue: sel,
                offset: reg::QUEUE_READY,
            });
            return false;
        };
        match (value != 0, q.is_ready()) {
            (true, false) => {
                if let Err(e) = q.enable(&*mem) {
                    return self.fail(e);
                }
                q.set_event_idx(event_idx);
            }
            (false, true) => q.disable(),
            _ => {}
        }
        false
    }

    fn queue_notify(&mut self, value: u32, mem: &mut dyn GuestMemory) -> bool {
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index (§4.2.2).
        let ready = self.queues.get(value as usize).is_some_and(Queue::is_ready);
        if !ready {
            self.ignored(GuestError::NotifyInvalidQueue { queue: value });
            return false;
        }
        if !self.is_active() {
            return false;
        }
        let result = self.device.notify(value as u16, &mut self.queues, mem);
        self.device_result(result)
    }

    /// Device reset (virtio 1.2 §2.4, §4.2.3.1): every register back to its initial
    /// value, queues disabled, interrupts cleared. ConfigGeneration keeps counting.
    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = DeviceStatus::empty();
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_unknown = false;
        self.queue_sel = 0;
        self.interrupt_status = Interrupts::empty();
    }

    /// Status write (virtio 1.2 §2.1, §3.1.1, §4.2.3.1). Zero resets. Otherwise bits
    /// only accumulate (the driver must not clear them); DEVICE_NEEDS_RESET is the
    /// device's to set. FEATURES_OK is kept only if the driver's features are a subset
    /// of the offer including VERSION_1 and the device agrees (§2.2.2).
    fn write_status(&mut self, value: u32, mem: &mut dyn GuestMemory) -> bool {
        if value == 0 {
            self.reset();
            return false;
        }
        let old = self.status;
        let written = DeviceStatus::from_bits_truncate(value as u8).difference(DeviceStatus::DEVICE_NEEDS_RESET);
        let mut new = old | written;
        if new.contains(DeviceStatus::FEATURES_OK) && !old.contains(DeviceStatus::FEATURES_OK) {
            let f = self.driver_features;
            let acceptable = !self.driver_features_unknown
                && f & !self.offered_features() == 0
                && f & features::VERSION_1 != 0
                && self.device.features_accepted(f);
            if !acceptable {
                new.remove(DeviceStatus::FEATURES_OK);
            }
        }
        let driver_ok_now = new.contains(DeviceStatus::DRIVER_OK) && !old.contains(DeviceStatus::DRIVER_OK);
        self.status = new;
        if driver_ok_now {
            if !new.contains(DeviceStatus::FEATURES_OK) {
                return self.fail(GuestError::DriverOkWithoutFeaturesOk);
            }
            // Input may have been waiting for the driver; let the device deliver it.
            return self.poll(mem);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::copy_config;

    #[test]
    fn copy_config_copies_in_range_only() {
        let config = [1, 2, 3, 4, 5];
        let mut data = [0u8; 2];
        copy_config(&config, 3, &mut data);
        assert_eq!(data, [4, 5]);
        let mut data = [9u8; 2];
        copy_config(&config, 4, &mut data);
        assert_eq!(data, [9, 9], "a range past the end leaves data alone");
        copy_config(&config, usize::MAX, &mut data);
        assert_eq!(data, [9, 9], "an overflowing range leaves data alone");
    }
}
