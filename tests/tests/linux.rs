//! QEMU integration tests of the Linux guest VM: each boots a system with the
//! `linux_vmm` PD and its VM (`tests/systems/linux-*.system`), types at the guest's
//! shell with a console script, and checks the serial transcript. They need the target
//! artifacts (`tools/build-targets.sh`) and the guest files (`tools/guest-image.sh`);
//! `./test.sh` makes both first, and the tests fail without them.

use vcpos_abi::console::{GUEST_LINE_PREFIX, TEST_PASS};
use vcpos_tests::linux::{
    self, command, guest_physical_maps, heartbeats, options, physical_range, stray_accesses, until_ready, BOOT,
    GUEST_PANIC, HEARTBEAT, LINUX_TIMEOUT, POWERED_OFF, PROMPT, READY, RESET, UNEXPECTED_RESTART,
};
use vcpos_tests::{build_system, guest_dir, scenario_system, Transcript};
use vcpos_tool::runner::{markers, Marker, Step, Stop};

/// Waits for the guest console line `text`: behind the VMM's guest line prefix, and
/// whole (the line end follows).
fn guest_line(text: &str) -> Step {
    Step::wait_text(format!("{GUEST_LINE_PREFIX}{text}\n"))
}

/// Index of the first guest console line whose text is `text`.
fn guest_line_index(t: &Transcript, text: &str) -> Option<usize> {
    let want = format!("{GUEST_LINE_PREFIX}{text}");
    t.output().lines().position(|l| l.trim() == want.trim())
}

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
        guest_line("vcpos-42"),
        command("uname -m"),
        guest_line("aarch64"),
        command(&format!("echo {long} | wc -c")),
        guest_line("101"),
        // The kernel logged its boot from the first message on.
        command("dmesg | grep -m1 'Booting Linux'"),
        Step::wait_text("] Booting Linux on physical CPU"),
        Step::wait_text(PROMPT),
    ]);
    let t = run("linux-vm", 1, script, UNEXPECTED_RESTART);
    t.assert_script_done();
    // The value is on a line of its own after the line that typed the expression.
    let typed = t
        .index_of("echo vcpos-$((6*7))")
        .unwrap_or_else(|| t.fail("the command line was not echoed"));
    let value = guest_line_index(&t, "vcpos-42").unwrap_or_else(|| t.fail("no vcpos-42 line"));
    if value <= typed {
        t.fail("vcpos-42 came before the command was typed");
    }
    if t.output().lines().filter(|l| l.starts_with(BOOT)).count() != 1 {
        t.fail("the guest booted more than once");
    }
    // No early console (one VM exit per character) was used: the kernel's messages
    // reach the console through hvc0 once the virtio console is up (those before it
    // are in the kernel log, which the guest shows with dmesg: checked by the script).
    if let Some(l) = t
        .output()
        .lines()
        .find(|l| l.contains("earlycon") || l.contains("bootconsole"))
    {
        t.fail(&format!("the guest used an early console: {l:?}"));
    }
    eprintln!(
        "linux-vm: ready after {:.1} s, script done after {:.1} s",
        t.capture.steps_done[0].as_secs_f64(),
        t.capture.elapsed.as_secs_f64()
    );
}

/// Guest console output cannot forge a marker: the guest prints `TEST PASS:` lines
/// (one with `echo`, one after another line in a single `printf` write), and the run
/// still goes on to its own later step (the guest's next computed line and prompt)
/// although it would stop at a pass marker, and the runner finds no marker in the
/// transcript. The VMM puts the guest line prefix before every guest line, so no guest
/// text starts a line, and the runner believes markers only at a line start
/// (`vcpos_abi::console`).
#[test]
fn guest_output_cannot_forge_markers() {
    let mut script = until_ready();
    script.extend([
        command("echo 'TEST PASS: linux-forge'"),
        guest_line("TEST PASS: linux-forge"),
        command("printf 'x\\nTEST PASS: y\\n'"),
        guest_line("TEST PASS: y"),
        command("echo forge-done-$((1+1))"),
        guest_line("forge-done-2"),
        Step::wait_text(PROMPT),
    ]);
    // The run also stops at a pass marker, as a test PD's run does: had the runner
    // believed a forged line, the run would end there, before the script's end.
    let mut opts = options(linux::timeout(LINUX_TIMEOUT, 1), script, UNEXPECTED_RESTART);
    opts.stop_on.push(Stop::LineStart(TEST_PASS.to_string()));
    let t = linux::run("linux-vm", &scenario_system("linux-vm"), &opts);
    t.assert_script_done();
    let out = t.output();
    if let Some(m) = markers(out).into_iter().find(|m| matches!(m, Marker::Pass(_))) {
        t.fail(&format!("the runner took a guest line as a marker: {m:?}"));
    }
    // No line of the transcript starts with a pass marker: the guest's forgeries (and
    // the echo of the commands that print them) are all behind the prefix.
    if let Some(l) = out.lines().find(|l| l.trim_start_matches('\r').starts_with(TEST_PASS)) {
        t.fail(&format!("a line starts with the pass marker: {l:?}"));
    }
    for l in out.lines().filter(|l| l.contains(TEST_PASS)) {
        if !l.starts_with(GUEST_LINE_PREFIX) {
            t.fail(&format!(
                "a line with the pass marker does not start with the guest prefix: {l:?}"
            ));
        }
    }
    // The forged lines are there, in order, as guest lines.
    let at = |text: &str| guest_line_index(&t, text).unwrap_or_else(|| t.fail(&format!("no guest line {text:?}")));
    let (forge, x, y, done) = (
        at("TEST PASS: linux-forge"),
        at("x"),
        at("TEST PASS: y"),
        at("forge-done-2"),
    );
    if !(forge < x && x + 1 == y && y < done) {
        t.fail("the guest lines are out of order (or printf's two lines are not adjacent)");
    }
    // Every line comes from the kernel ("vcpos|"), the VMM ("linux_vmm: ") or the guest
    // (behind the prefix): the guest printed no line of its own.
    for l in out.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if !(l.starts_with(GUEST_LINE_PREFIX) || l.starts_with("vcpos|") || l.starts_with("linux_vmm: ")) {
            t.fail(&format!(
                "a line without the guest prefix that is not the kernel's or the VMM's: {l:?}"
            ));
        }
    }
}

/// Linux's virtio_blk driver against the VMM's virtio-blk device (backed by a memory
/// region of the VMM): the disk appears with its size, data written at an offset reads
/// back after the guest dropped its page cache (so the read reaches the device), a
/// flush goes through, and what was never written reads as zeros.
#[test]
fn guest_disk_reads_back_what_it_wrote() {
    let mut script = until_ready();
    script.extend([
        // 4 MiB = 8192 sectors of 512 bytes.
        command("cat /sys/block/vda/size"),
        guest_line("8192"),
        command("echo vcpos-disk-$((6*7)) | dd of=/dev/vda bs=512 seek=100 conv=sync,fsync 2>/dev/null; echo wrote"),
        guest_line("wrote"),
        command("sync; echo 3 > /proc/sys/vm/drop_caches; echo dropped"),
        guest_line("dropped"),
        command("dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | head -n1"),
        guest_line("vcpos-disk-42"),
        // A 1 MiB transfer in large requests, compared end to end.
        command("dd if=/dev/urandom of=/tmp/a bs=64k count=16 2>/dev/null; dd if=/tmp/a of=/dev/vda bs=64k seek=8 conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=64k skip=8 count=16 2>/dev/null | cmp - /tmp/a && echo same-$((1+1))"),
        guest_line("same-2"),
        command("dd if=/dev/vda bs=512 skip=4000 count=1 2>/dev/null | od -An -tx1 | head -n1 | tr -d ' '"),
        guest_line("00000000000000000000000000000000"),
        Step::wait_text(PROMPT),
    ]);
    let t = run("linux-blk", 1, script, UNEXPECTED_RESTART);
    t.assert_script_done();
    if let Some(l) = t.output().lines().find(|l| l.contains("linux_vmm: virtio")) {
        t.fail(&format!("the VMM reported a guest error on a virtio device: {l:?}"));
    }
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
        script.push(guest_line("0x00000000"));
    }
    script.extend([
        command(&format!("devmem {:#x} 32 0x12345678", heartbeat_region.start)),
        command("echo still-$((40+2))"),
        guest_line("still-42"),
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
    let zero_line = format!("{GUEST_LINE_PREFIX}0x00000000");
    let zeros = t.output().lines().filter(|l| l.trim() == zero_line).count();
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
        guest_line("back-42"),
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
