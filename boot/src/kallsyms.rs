//! The kernel's symbol table for its backtraces (Linux's kallsyms): the function symbols of
//! the kernel ELF, demangled, in the compact format of the `kallsyms` crate, packed into every
//! initramfs as [`PATH`] (by [`crate::image::Images`], so `cargo run` and every test boot have
//! it). The kernel reads it at boot; without it, backtraces show raw addresses.

use std::path::Path;

use object::{Object, ObjectSymbol, SymbolKind};

use crate::Error;

/// Where the table goes in the initramfs.
pub const PATH: &str = "boot/kallsyms";

/// Reads the function symbols of the kernel ELF at `kernel` and writes the table. A
/// position-independent kernel (linked at 0) gets its symbols moved to where the bootloader
/// loads it, [`consts::KERNEL_BASE`].
pub fn from_elf(kernel: &Path) -> Result<Vec<u8>, Error> {
    let data = std::fs::read(kernel)
        .map_err(|e| Error::io(format!("cannot read `{}`", kernel.display()), e))?;
    table(&data)
        .map_err(|message| Error::Image(format!("kallsyms of `{}`: {message}", kernel.display())))
}

/// The table of the ELF image `data`.
pub fn table(data: &[u8]) -> Result<Vec<u8>, String> {
    let elf = object::File::parse(data).map_err(|e| e.to_string())?;
    let shift = if elf.kind() == object::ObjectKind::Dynamic {
        consts::KERNEL_BASE
    } else {
        0
    };
    let names: Vec<(u64, u64, String)> = elf
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.size() > 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((
                s.address() + shift,
                s.size(),
                format!("{:#}", rustc_demangle::demangle(name)),
            ))
        })
        .collect();
    let symbols: Vec<(u64, u64, &str)> = names
        .iter()
        .map(|(addr, size, name)| (*addr, *size, name.as_str()))
        .collect();
    kallsyms::write(&symbols).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_like_elf_gives_demangled_sorted_symbols() {
        // The test binary itself: an ELF with Rust symbols.
        let exe = std::env::current_exe().expect("test binary");
        let bytes = from_elf(&exe).expect("a table");
        let table = kallsyms::Table::parse(&bytes).expect("parses");
        assert!(table.len() > 100, "{} symbols", table.len());
        let rust = table
            .iter()
            .find(|s| s.name.starts_with("sheaf_boot::"))
            .expect("this crate's functions are named, demangled");
        assert!(
            table.iter().all(|s| !s.name.starts_with("_ZN")),
            "every Rust name is demangled"
        );
        assert_eq!(table.lookup(rust.addr).map(|s| s.addr), Some(rust.addr));
        let addrs: Vec<u64> = table.iter().map(|s| s.addr).collect();
        assert!(addrs.is_sorted());
    }

    #[test]
    fn not_an_elf_is_an_error() {
        assert!(table(b"not an ELF").is_err());
    }
}
