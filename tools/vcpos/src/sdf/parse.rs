//! Per-element parsing: XML tree → [`RawSystem`].
//!
//! One function per element reads its attributes (with Microkit 2.3's names,
//! defaults and single-element rules) and its children. This file has `<system>`,
//! `<memory_region>` and `<channel>`; [`super::pd`] has `<protection_domain>` and
//! everything inside it; [`super::attrs`] has the helpers both use. Rules that
//! need more than one element (names, overlaps, ids, priorities) are left to
//! [`super::check`], [`super::memory`] and [`super::ids`]. A bad attribute is reported and the element is still kept
//! (with the value unknown), so parsing always continues to the end of the file.

use roxmltree::{Document, Node};
use vcpos_abi::vspace::{LARGE_PAGE_SIZE, PAGE_SIZE};

use super::ast::*;
use super::attrs::{check_name, invalid_element, no_children, not_supported, required_id, x86_only};
use super::pd::protection_domain;
use super::reader::{Attr, Cx, Elem};

/// `prefill_bootinfo` values that only exist on x86.
const X86_BOOTINFO: [&str; 5] = [
    "x86_vbe",
    "x86_mbmmap",
    "x86_acpi_rsdp",
    "x86_framebuffer",
    "x86_tsc_freq",
];

/// Parses the document's root element, which must be `<system>`. `None` if it is
/// not (the error is recorded).
pub fn system(cx: &mut Cx<'_, '_>, doc: &Document<'_>) -> Option<RawSystem> {
    let el = Elem::new(cx, doc.root_element());
    if el.tag != "system" {
        cx.error_untagged(
            format!("invalid XML element '{}': the root element must be 'system'", el.tag),
            &el.span,
        );
        return None;
    }
    el.check_attributes(cx, &[]);
    let mut sys = RawSystem {
        span: el.span.clone(),
        mrs: Vec::new(),
        pds: Vec::new(),
        channels: Vec::new(),
    };
    for node in el.children() {
        let child = Elem::new(cx, node);
        match child.tag {
            "memory_region" => sys.mrs.push(memory_region(cx, &child)),
            "protection_domain" => protection_domain(cx, &child, None, &mut sys.pds),
            "channel" => sys.channels.push(channel(cx, &child)),
            "virtual_machine" => child.error(cx, "virtual machine must be a child of a protection domain"),
            "io_address_space" => x86_only(cx, &child),
            "domains" => not_supported(cx, &child, "no domain scheduler"),
            _ => invalid_element(cx, &child),
        }
    }
    Some(sys)
}

/// Reports every non-whitespace text node in the document (comments are fine).
pub fn stray_text(cx: &mut Cx<'_, '_>, doc: &Document<'_>) {
    for node in doc.root().descendants().filter(Node::is_text) {
        let text = node.text().unwrap_or("");
        if text.trim().is_empty() {
            continue;
        }
        let range = node.range();
        let skip = cx
            .input()
            .get(range.clone())
            .map_or(0, |raw| raw.len() - raw.trim_start().len());
        let span = cx.span_at(range.start + skip);
        let tag = node.parent_element().map_or("system", |p| p.tag_name().name());
        cx.error(
            format!("non-whitespace text is not allowed ('{}')", shorten(text.trim())),
            tag,
            &span,
        );
    }
}

/// At most 20 characters of `text`, for quoting it in a message.
fn shorten(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(20).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

/// `<memory_region>`.
fn memory_region(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> RawMr {
    el.check_attributes(
        cx,
        &[
            "name",
            "size",
            "page_size",
            "phys_addr",
            "prefill_path",
            "prefill_bootinfo",
        ],
    );
    no_children(cx, el);
    let name = el.required_text(cx, "name");
    if let Some(n) = &name {
        check_name(cx, el, n, false);
    }
    let prefill_path = el.text("prefill_path");
    let bootinfo = el.text("prefill_bootinfo");
    if let Some(b) = &bootinfo {
        prefill_bootinfo(cx, el, b, prefill_path.is_some());
    }
    let size = match el.number(cx, "size") {
        Attr::Valid(0) => {
            el.error(cx, "size must not be 0");
            None
        }
        Attr::Valid(s) => Some(s),
        Attr::Invalid => None,
        // Sized from the file below, once the page size is known (Microkit semantics).
        Attr::Absent if prefill_path.is_some() => None,
        Attr::Absent if bootinfo.is_some() => None,
        Attr::Absent => {
            el.missing(cx, "size");
            None
        }
    };
    let page_size = el.number(cx, "page_size").and_then(|p| {
        if p == PAGE_SIZE || p == LARGE_PAGE_SIZE {
            Some(p)
        } else {
            el.error(
                cx,
                format!("page_size ({p:#x}) must be {PAGE_SIZE:#x} or {LARGE_PAGE_SIZE:#x}"),
            );
            None
        }
    });
    let phys_addr = el.number(cx, "phys_addr");
    let size = match (&size, &prefill_path) {
        (None, Some(path)) if el.node.attribute("size").is_none() => {
            let page = if let Attr::Valid(p) = &page_size { *p } else { PAGE_SIZE };
            prefill_file_size(cx, el, path, page)
        }
        _ => size,
    };
    RawMr {
        name,
        size,
        page_size,
        phys_addr,
        prefill_path,
        span: el.span.clone(),
    }
}

/// The size of a region given by `prefill_path` only: the file's length rounded up to
/// `page_size`. The file is looked up as the builder does: in the search paths, then
/// relative to the current directory.
fn prefill_file_size(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, path: &str, page_size: u64) -> Option<u64> {
    let found = cx.find_file(path);
    let Some(file) = found else {
        el.error(
            cx,
            format!("unable to find prefill file '{path}' to size the region (give 'size', or a search path)"),
        );
        return None;
    };
    match std::fs::metadata(&file).map(|m| m.len()) {
        Ok(0) => {
            el.error(cx, format!("prefill file '{path}' is empty"));
            None
        }
        Ok(len) => Some(len.div_ceil(page_size) * page_size),
        Err(e) => {
            el.error(cx, format!("cannot read prefill file '{}': {e}", file.display()));
            None
        }
    }
}

/// `prefill_bootinfo`: every value Microkit 2.3 accepts is refused with a reason.
fn prefill_bootinfo(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, value: &str, with_path: bool) {
    if X86_BOOTINFO.contains(&value) {
        el.error(
            cx,
            format!("prefill_bootinfo '{value}' is x86-only, not supported on aarch64"),
        );
    } else if value == "fdt" {
        el.error(cx, "prefill_bootinfo 'fdt' is not supported by vcpos yet");
    } else {
        el.error(
            cx,
            format!(
                "invalid prefill_bootinfo '{value}' (Microkit accepts {} and fdt)",
                X86_BOOTINFO.join(", ")
            ),
        );
    }
    if with_path {
        el.error(cx, "prefill_path and prefill_bootinfo cannot be combined");
    }
}

/// `<channel>` and its `<end>`s.
fn channel(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> RawChannel {
    el.check_attributes(cx, &[]);
    let mut ends = Vec::new();
    for node in el.children() {
        let child = Elem::new(cx, node);
        match child.tag {
            "end" => ends.push(end(cx, &child)),
            _ => invalid_element(cx, &child),
        }
    }
    if ends.len() != 2 {
        el.error(
            cx,
            format!("a channel must have exactly two 'end' elements, found {}", ends.len()),
        );
    }
    RawChannel {
        ends,
        span: el.span.clone(),
    }
}

/// `<end>`.
fn end(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> RawEnd {
    el.check_attributes(cx, &["pd", "id", "pp", "notify", "setvar_id"]);
    no_children(cx, el);
    let pd = el.required_text(cx, "pd");
    let id = required_id(cx, el);
    let pp = el.boolean(cx, "pp").or(false).unwrap_or_default();
    let notify = el.boolean(cx, "notify").or(true).unwrap_or(true);
    RawEnd {
        pd,
        id,
        pp,
        notify,
        setvar_id: el.text("setvar_id"),
        span: el.span.clone(),
    }
}
