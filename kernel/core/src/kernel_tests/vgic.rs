//! vGIC list registers through the kernel: saved per vCPU, cleared by a restart.

use super::*;
use crate::vgic::lr;
use crate::vgic::tests::FakeLrs;

#[test]
fn list_registers_follow_their_vcpu_and_a_restart_clears_them() {
    let (mut k, mut p) = vmm_and_vcpu();
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    sys(&mut k, &mut p, Sysno::VcpuInjectIrq as u64, slot::BASE_VCPU, 27);
    let mut l = FakeLrs(vec![0; 4]);
    assert!(!k.vgic_fill(1, &mut l, |_| {}));
    assert_eq!(l.0[0], lr::pending(27));
    k.vgic_save(1, &mut l, |_| {});
    assert_eq!(l.0, vec![0; 4]);
    k.vgic_restore(1, &mut l);
    assert_eq!(l.0[0], lr::pending(27), "the interrupt comes back with its vCPU");
    k.vgic_save(1, &mut l, |_| {});
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    k.vgic_restore(1, &mut l);
    assert_eq!(l.0, vec![0; 4], "a restarted vCPU starts with no interrupt listed");
}
