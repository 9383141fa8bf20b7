//! Element and attribute rules shared by the per-element parsers ([`super::parse`],
//! [`super::pd`]): unexpected elements, names, ids, priority, budget and period.

use vcpos_abi::{DEFAULT_BUDGET_US, MAX_CHANNELS, MAX_PD_PRIORITY, MIN_BUDGET_US, PD_NAME_LEN};

use super::reader::{Attr, Cx, Elem};

/// An element not allowed where it appears.
pub fn invalid_element(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) {
    cx.error_untagged(format!("invalid XML element '{}'", el.tag), &el.span);
}

/// An x86-only Microkit element.
pub fn x86_only(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) {
    cx.error_untagged(
        format!("x86-only element '{}' is not supported on aarch64", el.tag),
        &el.span,
    );
}

/// A Microkit 2.3 element vcpos does not implement.
pub fn not_supported(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, why: &str) {
    cx.error_untagged(
        format!("element '{}' is not supported by vcpos ({why})", el.tag),
        &el.span,
    );
}

/// Reports every child element of an element that takes none.
pub fn no_children(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) {
    for node in el.children() {
        invalid_element(cx, &Elem::new(cx, node));
    }
}

/// Checks a name: not empty, and at most `PD_NAME_LEN` bytes if `limited`. The name
/// is kept even when it breaks a rule, so references to it still resolve.
pub fn check_name(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, name: &str, limited: bool) {
    if name.is_empty() {
        el.error(cx, "name must not be empty");
    } else if limited && name.len() > PD_NAME_LEN {
        el.error(
            cx,
            format!("name is {} bytes long, the maximum is {PD_NAME_LEN}", name.len()),
        );
    }
}

/// A channel-style id (`0..MAX_CHANNELS`, i.e. 0..=61), required.
pub fn required_id(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> Option<u8> {
    let id = el.required_number(cx, "id")?;
    if id < MAX_CHANNELS as u64 {
        u8::try_from(id).ok()
    } else {
        el.error(cx, format!("id must be < {MAX_CHANNELS}"));
        None
    }
}

/// `priority` (default 0, at most 254).
pub fn priority(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> Option<u8> {
    let p = el.number(cx, "priority").or(0)?;
    match u8::try_from(p) {
        Ok(p) if p <= MAX_PD_PRIORITY => Some(p),
        _ => {
            el.error(cx, format!("priority must be between 0 and {MAX_PD_PRIORITY}, got {p}"));
            None
        }
    }
}

/// `budget` and `period` in µs (defaults 1000 and = budget), with Microkit's
/// `budget <= period` rule and vcpos's minimum.
pub fn budget_period(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> (Option<u64>, Option<u64>) {
    let budget = el.number(cx, "budget").or(DEFAULT_BUDGET_US);
    let period = match el.number(cx, "period") {
        Attr::Absent => budget,
        Attr::Valid(p) => Some(p),
        Attr::Invalid => None,
    };
    if let (Some(b), Some(p)) = (budget, period) {
        if b > p {
            el.error(cx, format!("budget ({b}) must be less than, or equal to, period ({p})"));
        }
    }
    if let Some(b) = budget {
        if b < MIN_BUDGET_US {
            el.error(
                cx,
                format!("budget ({b}) must be at least {MIN_BUDGET_US} microseconds (the vcpos minimum)"),
            );
        }
    }
    (
        budget.filter(|&b| b >= MIN_BUDGET_US),
        period.filter(|&p| p >= MIN_BUDGET_US),
    )
}
