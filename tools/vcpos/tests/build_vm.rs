//! Virtual machines in `vcpos build`: vCPU threads, their stage-2 maps and the VMM's
//! vCPU capabilities.

mod build_support;

use build_support::*;
use vcpos_abi::bootinfo::{BootInfo, THREAD_PD, THREAD_VCPU};
use vcpos_abi::cap::{slot, CapKind};
use vcpos_abi::vspace::attr;
use vcpos_tool::image::{build, Config};
use vcpos_tool::model::{Perms, System, Vcpu, VirtualMachine};

/// vmm (0) with a VM of two vCPUs over 4 MiB of guest RAM at 0x4000_0000, plus an
/// unrelated PD (1).
fn vm_system() -> System {
    let mut sys = system(
        vec![pd("vmm", 200), pd("other", 10)],
        vec![mr("guest_ram", 0x40_0000, 0x20_0000, 3)],
        vec![],
    );
    let mut ram = map(0, 0x4000_0000, 20);
    ram.perms = Perms {
        read: true,
        write: true,
        execute: true,
    };
    let vcpu = |id, line| Vcpu {
        id,
        cpu: 0,
        setvar_id: None,
        span: span(line),
    };
    sys.pds[0].virtual_machine = Some(VirtualMachine {
        name: "linux".into(),
        priority: 100,
        budget_us: 2000,
        period_us: 4000,
        vcpus: vec![vcpu(0, 18), vcpu(3, 19)],
        maps: vec![ram],
        span: span(17),
    });
    // The VMM maps guest RAM too, to load the guest.
    sys.pds[0].maps.push(map(0, 0x1000_0000, 12));
    sys
}

#[test]
fn vcpus_become_threads_with_stage2_maps_and_vmm_capabilities() {
    let f = Fixture::new("vm_threads");
    let sys = vm_system();
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let info = BootInfo::parse(&built.blob).unwrap();
    assert_eq!(info.num_pds(), 4, "two PDs, then two vCPU threads");
    assert_eq!(info.pd(0).kind, THREAD_PD);
    for (thread, id) in [(2usize, 0u8), (3, 3)] {
        let v = info.pd(thread);
        assert_eq!(v.kind, THREAD_VCPU);
        assert_eq!(v.name_str(), format!("linux:vcpu{id}"));
        assert_eq!((v.parent, v.child_id, v.priority), (0, id, 100));
        assert_eq!((v.budget_us, v.period_us), (2000, 4000));
        assert_eq!(v.caps_count, 0);
        let maps: Vec<_> = info.pd_maps(&v).collect();
        assert_eq!(maps.len(), 1);
        assert_eq!((maps[0].vaddr, maps[0].size), (0x4000_0000, 0x40_0000));
        assert_eq!(
            maps[0].attrs,
            attr::READ | attr::WRITE | attr::EXECUTE | attr::CACHED | attr::LARGE
        );
        // The guest sees the same frames the VMM maps.
        let vmm_ram = info.pd_maps(&info.pd(0)).find(|m| m.vaddr == 0x1000_0000).unwrap();
        assert_eq!(maps[0].paddr, vmm_ram.paddr);
        // The VMM holds the vCPU in both Microkit slots.
        let caps: Vec<_> = info.pd_caps(&info.pd(0)).collect();
        for base in [slot::BASE_VM_TCB, slot::BASE_VCPU] {
            let c = caps
                .iter()
                .find(|c| u64::from(c.slot) == base + u64::from(id))
                .expect("vCPU cap");
            assert_eq!((c.kind, c.object), (CapKind::Vcpu as u8, thread as u32));
        }
    }
    // Stage-2 tables are in the page-table pool: L1 + L2 for 2 MiB blocks, per vCPU.
    assert!(info.header.pt_pool_size >= 4 * 0x1000);
    assert!(built.report.contains("## thread 3: 'linux:vcpu3'"), "{}", built.report);
    assert!(
        built.report.contains("IPA 0x0040000000..0x0040400000"),
        "{}",
        built.report
    );
    assert!(built.report.contains("slot 269: vCPU -> thread 3"), "{}", built.report);
}

#[test]
fn too_many_threads_is_an_error_at_the_vm() {
    let f = Fixture::new("vm_too_many");
    let mut sys = vm_system();
    let vm = sys.pds[0].virtual_machine.as_mut().unwrap();
    vm.vcpus = (0..63)
        .map(|id| Vcpu {
            id,
            cpu: 0,
            setvar_id: None,
            span: span(18),
        })
        .collect();
    let errors = match build(&sys, &board(), &f.opts(Config::Debug)) {
        Ok(_) => panic!("65 threads built"),
        Err(e) => e,
    };
    assert_error(
        &errors,
        "too many threads: 2 protection domains and 63 vCPUs",
        "virtual_machine",
        17,
    );
}
