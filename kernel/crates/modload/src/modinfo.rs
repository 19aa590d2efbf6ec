//! `.modinfo`: the module's `key=value` strings, its name, and Linux's GPL-compatible licenses.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, ErrorKind, Location, Result};

/// The longest module name (Linux's `MODULE_NAME_LEN` less the NUL: 64 - 8 - 1).
pub const MAX_NAME_LEN: usize = 55;

/// Linux's `license_is_gpl_compatible`: the licenses that may use GPL-only symbols.
pub const GPL_COMPATIBLE: [&str; 6] = [
    "GPL",
    "GPL v2",
    "GPL and additional rights",
    "Dual BSD/GPL",
    "Dual MIT/GPL",
    "Dual MPL/GPL",
];

/// Whether `license` is one of [`GPL_COMPATIBLE`] (exactly, as Linux compares).
pub fn license_is_gpl_compatible(license: &str) -> bool {
    GPL_COMPATIBLE.contains(&license)
}

/// The parsed `.modinfo` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModInfo<'a> {
    /// Every entry in file order, `(key, value)`.
    pub entries: Vec<(&'a str, &'a str)>,
}

impl<'a> ModInfo<'a> {
    /// Parses NUL-separated `key=value` strings; runs of NULs (padding between entries) are
    /// skipped, as Linux's `get_next_modinfo` does. An absent section is an empty `ModInfo`.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let bad = |m: String| Err(Error::new(ErrorKind::BadModinfo, Location::Modinfo, m));
        if data.last().is_some_and(|&b| b != 0) {
            return bad("the last entry is not NUL-terminated".into());
        }
        let mut entries = Vec::new();
        for (i, raw) in data
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let Ok(text) = core::str::from_utf8(raw) else {
                return bad(format!("entry {i} is not UTF-8"));
            };
            let Some((key, value)) = text.split_once('=') else {
                return bad(format!("entry {i} `{text}` has no `=`"));
            };
            if key.is_empty() {
                return bad(format!("entry {i} `{text}` has an empty key"));
            }
            if matches!(key, "license" | "name") && entries.iter().any(|&(k, _)| k == key) {
                return bad(format!("a second `{key}=` entry"));
            }
            entries.push((key, value));
        }
        Ok(ModInfo { entries })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .find(|&&(k, _)| k == key)
            .map(|&(_, v)| v)
    }

    /// Every value of `key`, in file order (`author` may repeat).
    pub fn get_all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.entries
            .iter()
            .filter(move |&&(k, _)| k == key)
            .map(|&(_, v)| v)
    }

    /// `license=`.
    pub fn license(&self) -> Option<&'a str> {
        self.get("license")
    }

    /// Whether the license is GPL-compatible (no license is not).
    pub fn is_gpl_compatible(&self) -> bool {
        self.license().is_some_and(license_is_gpl_compatible)
    }

    /// `description=`.
    pub fn description(&self) -> Option<&'a str> {
        self.get("description")
    }

    /// `author=` entries.
    pub fn authors(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.get_all("author")
    }

    /// The modules named in `depends=` (comma-separated, empties skipped).
    pub fn depends(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.get_all("depends")
            .flat_map(|v| v.split(','))
            .filter(|d| !d.is_empty())
    }

    /// `parmtype=NAME:TYPE` entries, as `(NAME, TYPE)`.
    pub fn parm_types(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.get_all("parmtype").filter_map(|v| v.split_once(':'))
    }

    /// `parm=NAME:DESCRIPTION` for `name`.
    pub fn parm_description(&self, name: &str) -> Option<&'a str> {
        self.get_all("parm")
            .filter_map(|v| v.split_once(':'))
            .find(|&(n, _)| n == name)
            .map(|(_, d)| d)
    }
}

/// The module's name: `name=` from `.modinfo`, else the file name less its directory and
/// `.ko`. `-` becomes `_` (as `kmod` does), and the result must be 1..=55 characters of
/// `[A-Za-z0-9_]`.
pub fn module_name(info: &ModInfo<'_>, file_name: &str) -> Result<String> {
    let raw = info.get("name").unwrap_or_else(|| {
        let base = file_name.rsplit('/').next().unwrap_or(file_name);
        base.strip_suffix(".ko").unwrap_or(base)
    });
    let name: String = raw
        .chars()
        .map(|c| if c == '-' { '_' } else { c })
        .collect();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::new(
            ErrorKind::BadName,
            Location::Modinfo,
            format!("module name `{raw}`: 1 to {MAX_NAME_LEN} characters of [A-Za-z0-9_-]"),
        ));
    }
    Ok(name)
}
