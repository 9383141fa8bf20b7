//! QEMU integration tests of the Linux guest VM: each boots a system with the
//! `linux_vmm` PD and its VM (`tests/systems/linux-*.system`), types at the guest's
//! shell with a console script, and checks the serial transcript. They need the target
//! artifacts (`tools/build-targets.sh`) and the guest files (`tools/guest-image.sh`);
//! `./test.sh` makes both first, and the tests fail without them.

use vcpos_tests::linux::{
    self, command, guest_physical_maps, heartbeats, options, physical_range, stray_accesses, until_ready, BOOT,
    GUEST_PANIC, HEARTBEAT, LINUX_TIMEOUT, POWERED_OFF, PROMPT, READY, RESET, UNEXPECTED_RESTART,
};
use vcpos_tests::{build_system, guest_dir, scenario_system, Transcript};
use vcpos_tool::runner::Step;

/// Boots `scenario` and runs `script` on it with [`options`].
fn run(scenario: &str, boots: u32, script: Vec<Step>, also_stop_on: &[&str]) -> Transcript {
    let opts = options(linux::timeout(LINUX_TIMEOUT, boots), script, also_stop_on);
    linux::run(scenario, &scenario_system(scenario), &opts)
}

/// The guest boots to its shell, which runs commands typed on the serial console and
/// answers on it: the computed value comes back, not just the echo of the line typed.
#[test]
fn linux_boots_to_shell_and_runs_a_command() {
    // A line longer than the UART FIFO and the VMM's 64-byte input batches.
    let long = "x".repeat(100);
    let mut script = until_ready();
    script.extend([
        command("echo vcpos-$((6*7))"),
        Step::wait_line("vcpos-42"),
        command("uname -m"),
        Step::wait_line("aarch64"),
        command(&format!("echo {long} | wc -c")),
        Step::wait_line("101"),
        Step::wait_text(PROMPT),
    ]);
    let t = run("linux-vm", 1, script, UNEXPECTED_RESTART);
    t.assert_script_done();
    // The value is on a line of its own after the line that typed the expression.
    let typed = t
        .index_of("echo vcpos-$((6*7))")
        .unwrap_or_else(|| t.fail("the command line was not echoed"));
    let value = t.line_index("vcpos-42").unwrap_or_else(|| t.fail("no vcpos-42 line"));
    if value <= typed {
        t.fail("vcpos-42 came before the command was typed");
    }
    if t.output().lines().filter(|l| l.starts_with(BOOT)).count() != 1 {
        t.fail("the guest booted more than once");
    }
    eprintln!(
        "linux-vm: ready after {:.1} s, script done after {:.1} s",
        t.capture.steps_done[0].as_secs_f64(),
        t.capture.elapsed.as_secs_f64()
    );
}

/// The guest reads and writes guest-physical addresses outside its RAM: just above
/// it, and the physical addresses where the builder put other PDs' memory (the VMM's
/// guest_kernel region, which holds the kernel Image, and the heartbeat PD's state
/// region, which holds its live count). Stage 2 maps none of them, so every access
/// traps to the VMM, which reports it and lets loads read 0; the memory behind them
/// is untouched (heartbeat checks its word each beat) and the shell keeps working.
/// (Memory the builder placed below guest RAM, such as the PDs' stacks and IPC
/// buffers, has physical addresses inside the guest's RAM window 0x4000_0000..
/// 0x5000_0000: there the same numbers are guest RAM, 4 MiB away from them
/// physically, so they are no probe of anything.)
#[test]
fn guest_access_outside_its_ram_is_reported() {
    let scenario = "linux-heartbeat";
    let built =
        build_system(scenario, &scenario_system(scenario), "debug").unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let windows = guest_physical_maps(&built.report);
    assert_eq!(
        windows.len(),
        1,
        "one stage-2 map (guest RAM) expected in the report:\n{}",
        built.report
    );
    let ram = &windows[0];
    let kernel_region = physical_range(&built.report, "memory region 'guest_kernel'").unwrap();
    let heartbeat_region = physical_range(&built.report, "memory region 'heartbeat_state'").unwrap();
    // (name, guest-physical address = the physical address of someone else's memory)
    let probes = [
        ("just above guest RAM", ram.end),
        ("the VMM's guest_kernel region (the kernel Image)", kernel_region.start),
        ("the heartbeat PD's heartbeat_state region", heartbeat_region.start),
    ];
    for (what, addr) in probes {
        assert!(
            !ram.contains(addr),
            "{what} at {addr:#x} lies in the guest's RAM window {:#x}..{:#x}",
            ram.start,
            ram.end
        );
    }
    // What a read would return if it reached the guest_kernel region: the Image's first word.
    let image = std::fs::read(guest_dir().join("Image")).expect("guest Image (run tools/guest-image.sh)");
    let image_word = u32::from_le_bytes(image[..4].try_into().expect("Image has 4 bytes"));
    assert_ne!(
        image_word, 0,
        "the Image's first word must not be 0 for this test to mean something"
    );

    let mut script = until_ready();
    for (_, addr) in probes {
        script.push(command(&format!("devmem {addr:#x} 32")));
        script.push(Step::wait_line("0x00000000"));
    }
    script.extend([
        command(&format!("devmem {:#x} 32 0x12345678", heartbeat_region.start)),
        command("echo still-$((40+2))"),
        Step::wait_line("still-42"),
        // heartbeat still beats (it prints TEST FAIL, a stop marker, if its word changed).
        Step::wait_text(HEARTBEAT),
        Step::wait_text(HEARTBEAT),
    ]);
    let opts = options(linux::timeout(LINUX_TIMEOUT, 1), script, UNEXPECTED_RESTART);
    let t = built.boot(&opts).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    t.assert_script_done();

    let strays = stray_accesses(t.output());
    for (what, addr) in probes {
        if !strays.iter().any(|s| !s.write && s.address == addr && s.size == 4) {
            t.fail(&format!(
                "no VMM report of the guest's 4-byte read of {what} at {addr:#x}"
            ));
        }
    }
    if !strays.iter().any(|s| s.write && s.address == heartbeat_region.start) {
        t.fail("no VMM report of the guest's write to the heartbeat PD's region");
    }
    // Every devmem read printed 0, none printed the Image's first word.
    let zeros = t.output().lines().filter(|l| l.trim() == "0x00000000").count();
    if zeros < probes.len() {
        t.fail(&format!(
            "{zeros} devmem reads printed 0x00000000, expected {}",
            probes.len()
        ));
    }
    if t.output().contains(&format!("0x{image_word:08X}")) {
        t.fail("a guest read returned the kernel Image's first word");
    }
}

/// The guest powers off, then panics; each time the VMM reports it and boots the guest
/// again to a working shell, and the heartbeat PD next to the VM keeps beating.
#[test]
fn guest_poweroff_and_crash_restart_the_guest_while_other_pds_run() {
    let mut script = until_ready();
    script.extend([
        Step::wait_text(PROMPT),
        // A beat at the prompt: heartbeat gets the CPU while the guest idles.
        Step::after_text(HEARTBEAT, "poweroff -f\r"),
        Step::wait_text(POWERED_OFF),
        Step::wait_text(format!("{BOOT}2:")),
        Step::wait_text(READY),
        Step::wait_text(PROMPT),
        Step::after_text(HEARTBEAT, "echo c > /proc/sysrq-trigger\r"),
        Step::wait_text(GUEST_PANIC),
        Step::wait_text(RESET),
        Step::wait_text(format!("{BOOT}3:")),
        Step::wait_text(READY),
        command("echo back-$((40+2))"),
        Step::wait_line("back-42"),
        Step::wait_text(HEARTBEAT),
    ]);
    let t = run("linux-heartbeat", 3, script, &["linux_vmm: boot 4:"]);
    t.assert_script_done();
    let out = t.output();
    let at = |text: &str| {
        t.index_of(text)
            .unwrap_or_else(|| t.fail(&format!("no line containing {text:?}")))
    };
    let (off, boot2, panic, reset, boot3) = (
        at(POWERED_OFF),
        at(&format!("{BOOT}2:")),
        at(GUEST_PANIC),
        at(RESET),
        at(&format!("{BOOT}3:")),
    );
    if !(off < boot2 && boot2 < panic && panic < reset && reset < boot3) {
        t.fail("power-off, boot 2, panic, reset and boot 3 are out of order");
    }
    // One heartbeat PD, never restarted, its numbers 1, 2, 3, ... without a gap.
    if out.matches("heartbeat started").count() != 1 {
        t.fail("heartbeat started more than once (or never)");
    }
    let beats = heartbeats(out);
    for (i, &(_, n)) in beats.iter().enumerate() {
        if n != i as u64 + 1 {
            t.fail(&format!(
                "heartbeat number {} is {n}: beats were lost or repeated",
                i + 1
            ));
        }
    }
    // And it beat in each life of the guest.
    let beat_between = |from: usize, to: usize| beats.iter().any(|&(line, _)| from < line && line < to);
    for (what, from, to) in [
        ("before the power-off", 0, off),
        ("between boot 2 and the panic", boot2, panic),
        ("after boot 3", boot3, usize::MAX),
    ] {
        if !beat_between(from, to) {
            t.fail(&format!("no heartbeat {what}"));
        }
    }
    eprintln!(
        "linux-heartbeat: {} beats, last {}; three boots and the script in {:.1} s",
        beats.len(),
        beats.last().map_or(0, |b| b.1),
        t.capture.elapsed.as_secs_f64()
    );
}
