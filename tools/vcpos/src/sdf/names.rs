//! Name tables of a system (memory regions and PDs by name) and how names are shown
//! in messages; used by the cross-element rules ([`super::check`], [`super::memory`],
//! [`super::ids`]).

use std::collections::HashMap;

/// Name → index tables (first definition wins when a name is duplicated).
pub struct Names<'r> {
    /// Memory region names → index in [`RawSystem::mrs`].
    pub mrs: HashMap<&'r str, usize>,
    /// PD names → index in [`RawSystem::pds`].
    pub pds: HashMap<&'r str, usize>,
}

impl Names<'_> {
    /// The memory region a reference names, if it exists.
    pub fn mr(&self, name: Option<&String>) -> Option<usize> {
        name.and_then(|n| self.mrs.get(n.as_str()).copied())
    }

    /// The PD a reference names, if it exists.
    pub fn pd(&self, name: Option<&String>) -> Option<usize> {
        name.and_then(|n| self.pds.get(n.as_str()).copied())
    }
}

/// A name for messages; a missing name (already reported) shows as `?`.
pub fn shown(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("?")
}
