//! The status pages: a snapshot of the kernel's event counters (every thread's, by
//! index, and the kernel-wide ones) as an HTML table and as JSON.
//!
//! Threads are labelled by index (`thread N`): the kernel has no table of thread names.
//! Thread `N` is protection domain `N` of the system file counting from 0 (in document
//! order, children included), then the vCPUs of virtual machines (the builder's report
//! lists both); the pages say which thread is the status PD itself (`own_index`: the
//! thread index the kernel names when the PD reads its own counters). The kernel
//! reports no thread state either (running, blocked, faulted): the pages say so
//! (`"state": null`).

use core::fmt::{self, Write};

use vcpos_abi::counters::{GuestExit, KernelCounters, ThreadCounters};

/// Most kernel threads (PDs plus vCPUs): the kernel's `MAX_THREADS`
/// (`vcpos_kernel_core::kernel::MAX_THREADS`; a test checks they agree).
pub const MAX_THREADS: usize = 64;

/// What the pages show.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Every thread's counters, by kernel thread index.
    pub threads: &'a [ThreadCounters],
    /// The status PD's own counters (read through its own capability).
    pub own: ThreadCounters,
    /// The status PD's own thread index, if known (the kernel's answer to a read of
    /// its own counters).
    pub own_index: Option<usize>,
    /// The kernel-wide counters.
    pub kernel: KernelCounters,
    /// The counter (`CNTVCT`) when the snapshot was taken.
    pub now_ticks: u64,
    /// The counter's frequency in Hz.
    pub counter_hz: u64,
}

/// A [`fmt::Write`] into a byte buffer that fails (rather than truncating) when full.
#[derive(Debug)]
pub struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Cursor<'a> {
    /// An empty cursor over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Cursor<'a> {
        Cursor { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was written.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The per-thread counters, as (JSON key / column title, value).
fn fields(t: &ThreadCounters) -> [(&'static str, u64); 11] {
    [
        ("kernel_entries", t.kernel_entries),
        ("switches_to", t.switches_to),
        ("switches_from", t.switches_from),
        ("notifications_sent", t.notifications_sent),
        ("notifications_received", t.notifications_received),
        ("ppc_calls", t.ppc_calls),
        ("ppc_served", t.ppc_served),
        ("faults", t.faults),
        ("budget_exhaustions", t.budget_exhaustions),
        ("time_run_ticks", t.time_run),
        ("bytes_copied", t.bytes_copied),
    ]
}

fn json_counters(out: &mut impl Write, t: &ThreadCounters) -> fmt::Result {
    for (k, v) in fields(t) {
        write!(out, "\"{k}\":{v},")?;
    }
    out.write_str("\"guest_exits\":{")?;
    for (i, r) in GuestExit::ALL.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}\"{}\":{}", r.name(), t.guest_exits[*r as usize])?;
    }
    out.write_str("}")
}

/// The snapshot as one JSON object:
/// `{"counter_hz":..,"now_ticks":..,"kernel":{"timer_interrupts":..,"timer_arms":..},
/// "names":"..","own_index":N or null,"own":{counters},"threads":[{"index":0,
/// "label":"thread 0","state":null,counters},..]}`, counters being `kernel_entries`, `switches_to`, `switches_from`,
/// `notifications_sent`, `notifications_received`, `ppc_calls`, `ppc_served`,
/// `faults`, `budget_exhaustions`, `time_run_ticks`, `bytes_copied` (I/O data the
/// PD copied, as it reported) and `guest_exits` (an object by
/// reason: `wfx`, `dabt`, `iabt`, `hvc`, `smc`, `sysreg`, `irq`, `other`).
pub fn json(out: &mut impl Write, s: &Snapshot<'_>) -> fmt::Result {
    write!(
        out,
        "{{\"counter_hz\":{},\"now_ticks\":{},\"kernel\":{{\"timer_interrupts\":{},\"timer_arms\":{}}},\
         \"names\":\"{NAMES}; own_index is the status PD's thread\",\"own_index\":",
        s.counter_hz, s.now_ticks, s.kernel.timer_interrupts, s.kernel.timer_arms
    )?;
    match s.own_index {
        Some(i) => write!(out, "{i}")?,
        None => out.write_str("null")?,
    }
    out.write_str(",\"own\":{")?;
    json_counters(out, &s.own)?;
    out.write_str("},\"threads\":[")?;
    for (i, t) in s.threads.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}{{\"index\":{i},\"label\":\"thread {i}\",\"state\":null,")?;
        json_counters(out, t)?;
        out.write_str("}")?;
    }
    out.write_str("]}\n")
}

/// What the thread labels mean (both pages say it).
const NAMES: &str = "by index: thread N is protection domain N of the system file counting from 0 \
     (document order, children included), then the vCPUs; the kernel keeps no names or thread states";

/// Counter ticks as microseconds (0 for a zero frequency, at most `u64::MAX`).
fn micros(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000 / u128::from(hz)).min(u128::from(u64::MAX)) as u64
}

/// The snapshot as an HTML page: a table with a row per thread (time run in
/// microseconds), the status PD's own row, and the kernel-wide counters.
pub fn html(out: &mut impl Write, s: &Snapshot<'_>) -> fmt::Result {
    out.write_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vcpos status</title>\
         <style>td{text-align:right;padding:0 .5em}</style></head><body>\n<h1>vcpos status</h1>\n",
    )?;
    write!(
        out,
        "<p>Uptime {} ms. Kernel timer interrupts {}, timer re-arms {}.</p>\n<p>Threads {NAMES}.",
        micros(s.now_ticks, s.counter_hz) / 1000,
        s.kernel.timer_interrupts,
        s.kernel.timer_arms
    )?;
    if let Some(i) = s.own_index {
        write!(out, " This status PD is thread {i}.")?;
    }
    out.write_str("</p>\n<table>\n<tr><th>thread</th>")?;
    for (k, _) in fields(&ThreadCounters::default()) {
        let k = if k == "time_run_ticks" { "time_run_us" } else { k };
        write!(out, "<th>{k}</th>")?;
    }
    out.write_str("<th>guest_exits</th></tr>\n")?;
    let row = |out: &mut dyn Write, label: fmt::Arguments<'_>, t: &ThreadCounters| -> fmt::Result {
        write!(out, "<tr><td>{label}</td>")?;
        for (k, v) in fields(t) {
            let v = if k == "time_run_ticks" {
                micros(v, s.counter_hz)
            } else {
                v
            };
            write!(out, "<td>{v}</td>")?;
        }
        let exits = t.guest_exits.iter().fold(0u64, |a, &e| a.saturating_add(e));
        writeln!(out, "<td>{exits}</td></tr>")
    };
    for (i, t) in s.threads.iter().enumerate() {
        row(out, format_args!("thread {i}"), t)?;
    }
    row(out, format_args!("status PD (own)"), &s.own)?;
    out.write_str("</table>\n</body></html>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(threads: &[ThreadCounters]) -> Snapshot<'_> {
        let own = ThreadCounters {
            kernel_entries: 7,
            ..ThreadCounters::default()
        };
        Snapshot {
            threads,
            own,
            own_index: Some(1),
            kernel: KernelCounters {
                timer_interrupts: 3,
                timer_arms: 4,
            },
            now_ticks: 62_500_000,
            counter_hz: 62_500_000,
        }
    }

    #[test]
    fn json_lists_every_thread_and_counter() {
        let mut a = ThreadCounters {
            kernel_entries: 10,
            time_run: 625,
            bytes_copied: 1514,
            ..ThreadCounters::default()
        };
        a.guest_exits[GuestExit::Hvc as usize] = 2;
        let b = ThreadCounters {
            ppc_served: u64::MAX,
            ..ThreadCounters::default()
        };
        let mut out = String::new();
        json(&mut out, &snapshot(&[a, b])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["counter_hz"], 62_500_000);
        assert_eq!(v["kernel"]["timer_arms"], 4);
        assert_eq!(v["own"]["kernel_entries"], 7);
        assert_eq!(v["own_index"], 1);
        assert!(v["names"].as_str().unwrap().contains("counting from 0"));
        let t = v["threads"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["index"], 0);
        assert_eq!(t[0]["label"], "thread 0");
        assert!(t[0]["state"].is_null());
        assert_eq!(t[0]["kernel_entries"], 10);
        assert_eq!(t[0]["time_run_ticks"], 625);
        assert_eq!(t[0]["bytes_copied"], 1514);
        assert_eq!(t[0]["guest_exits"]["hvc"], 2);
        assert_eq!(t[0]["guest_exits"].as_object().unwrap().len(), GuestExit::COUNT);
        assert_eq!(t[1]["ppc_served"], u64::MAX);
        for k in [
            "switches_to",
            "switches_from",
            "notifications_sent",
            "notifications_received",
            "ppc_calls",
            "faults",
            "budget_exhaustions",
        ] {
            assert_eq!(t[1][k], 0, "{k}");
        }
        // No threads and no own index: still valid JSON.
        let mut out = String::new();
        let none = Snapshot {
            own_index: None,
            ..snapshot(&[])
        };
        json(&mut out, &none).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["threads"].as_array().unwrap().len(), 0);
        assert!(v["own_index"].is_null());
    }

    #[test]
    fn html_has_a_row_per_thread() {
        // 1 ms at 62.5 MHz.
        let a = ThreadCounters {
            time_run: 62_500,
            ..ThreadCounters::default()
        };
        let mut out = String::new();
        html(&mut out, &snapshot(&[a; 3])).unwrap();
        assert!(out.starts_with("<!DOCTYPE html>"));
        assert!(out.contains("Uptime 1000 ms"));
        assert_eq!(out.matches("<tr><td>thread ").count(), 3);
        assert!(out.contains("<tr><td>thread 2</td>"));
        assert!(out.contains("<td>1000</td>"), "time run in microseconds");
        assert!(out.contains("<tr><td>status PD (own)</td><td>7</td>"));
        assert!(out.contains("counting from 0") && out.contains("This status PD is thread 1."));
        assert!(out.ends_with("</html>\n"));
    }

    #[test]
    fn max_threads_is_the_kernels() {
        assert_eq!(MAX_THREADS, vcpos_kernel_core::kernel::MAX_THREADS);
    }

    #[test]
    fn cursor_fails_when_full() {
        let mut buf = [0u8; 8];
        let mut c = Cursor::new(&mut buf);
        assert!(c.write_str("12345").is_ok());
        assert!(c.write_str("6789").is_err());
        assert_eq!(c.written(), b"12345");
        let mut big = [0u8; 64];
        let mut c = Cursor::new(&mut big);
        assert!(json(&mut c, &snapshot(&[ThreadCounters::default()])).is_err());
    }
}
