//! C headers generated from the kernel build (Linux's `asm-offsets` idea): the numbers a C
//! module needs but cannot compute, because the types behind them are Rust.
//!
//! `include/generated/kmem_cache_size.h` gives the size and alignment of the kernel's
//! `KmemCache`, so that C code can declare a static cache (`struct kmem_cache_opaque`,
//! `include/sheaf/slab-static.h`) without seeing its fields. The kernel exports the two numbers
//! as the symbol [`LAYOUT_SYMBOL`] (two little-endian `u64`s); this module reads them from the
//! kernel ELF. `cargo run -- --gen-headers` rewrites the checked-in file; the host trial
//! `headers::kmem_cache_size_h_is_current` fails when it is stale.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};

/// The kernel's symbol holding `[size, align]` of `KmemCache` (`kcore::memory::kmalloc`).
pub const LAYOUT_SYMBOL: &str = "SHEAF_KMEM_CACHE_LAYOUT";

/// The header's path in the source tree, relative to the repository root.
pub const KMEM_CACHE_SIZE_H: &str = "include/generated/kmem_cache_size.h";

/// The repository root (where `include/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("boot/ sits in the repository")
        .to_owned()
}

/// Reads `[size, align]` of `KmemCache` from the kernel ELF.
pub fn kmem_cache_layout(kernel: &Path) -> Result<(u64, u64), String> {
    let data = std::fs::read(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let elf = object::File::parse(&*data).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let sym = elf
        .symbols()
        .find(|s| s.name() == Ok(LAYOUT_SYMBOL))
        .ok_or_else(|| format!("{}: no symbol {LAYOUT_SYMBOL}", kernel.display()))?;
    let section = sym
        .section_index()
        .and_then(|i| elf.section_by_index(i).ok())
        .ok_or_else(|| format!("{LAYOUT_SYMBOL} is not in a section"))?;
    let bytes = section
        .data_range(sym.address(), 16)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{LAYOUT_SYMBOL} lies outside its section's data"))?;
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    Ok((word(0), word(1)))
}

/// The text of `kmem_cache_size.h` for a cache of `size` bytes aligned to `align`.
pub fn kmem_cache_size_h(size: u64, align: u64) -> String {
    format!(
        "/* SPDX-License-Identifier: MIT OR Apache-2.0 */\n\
         /*\n \
         * Generated from the kernel build by `cargo run -- --gen-headers`: do not edit.\n \
         * The size and alignment of the kernel's struct kmem_cache (a Rust type), so that C\n \
         * code can declare static caches (struct kmem_cache_opaque, sheaf/slab-static.h).\n \
         */\n\
         #ifndef _GENERATED_KMEM_CACHE_SIZE_H\n\
         #define _GENERATED_KMEM_CACHE_SIZE_H\n\
         \n\
         #define KMEM_CACHE_SIZE {size}\n\
         #define KMEM_CACHE_ALIGN {align}\n\
         \n\
         #endif /* _GENERATED_KMEM_CACHE_SIZE_H */\n"
    )
}

/// Writes every generated header into the source tree at `root`; returns the paths written.
pub fn generate(kernel: &Path, root: &Path) -> Result<Vec<PathBuf>, String> {
    let (size, align) = kmem_cache_layout(kernel)?;
    let path = root.join(KMEM_CACHE_SIZE_H);
    std::fs::create_dir_all(path.parent().expect("a directory"))
        .and_then(|()| std::fs::write(&path, kmem_cache_size_h(size, align)))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(vec![path])
}

/// Compares the checked-in header at `root` with what the kernel at `kernel` says.
pub fn check(kernel: &Path, root: &Path) -> Result<(), String> {
    let (size, align) = kmem_cache_layout(kernel)?;
    let path = root.join(KMEM_CACHE_SIZE_H);
    let want = kmem_cache_size_h(size, align);
    let have = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if have == want {
        Ok(())
    } else {
        Err(format!(
            "{} is stale: the kernel's KmemCache is {size} bytes aligned to {align}; \
             run `cargo run -- --gen-headers`",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `slab-static.h` compiles with the checked-in numbers (gcc, as modules will be built),
    /// gives `struct kmem_cache_opaque` that size and alignment, and puts a static cache in
    /// `.data`, as its comment promises.
    #[test]
    fn slab_static_h_compiles_and_places_a_static_cache_in_data() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        let obj = dir.path().join("t.o");
        std::fs::write(
            &src,
            "#include \"sheaf/slab-static.h\"\n\
             _Static_assert(sizeof(struct kmem_cache_opaque) == KMEM_CACHE_SIZE, \"size\");\n\
             _Static_assert(_Alignof(struct kmem_cache_opaque) == KMEM_CACHE_ALIGN, \"align\");\n\
             DEFINE_KMEM_CACHE_STATIC(foo_cache);\n\
             struct kmem_cache *foo(void) { return to_kmem_cache(&foo_cache); }\n",
        )
        .unwrap();
        let out = std::process::Command::new("cc")
            .args([
                "-std=gnu11",
                "-Wall",
                "-Werror",
                "-fno-pic",
                "-mcmodel=kernel",
                "-c",
                "-I",
            ])
            .arg(repo_root().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .expect("a C compiler (cc)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let data = std::fs::read(&obj).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        let sym = elf.symbols().find(|s| s.name() == Ok("foo_cache")).unwrap();
        let section = elf.section_by_index(sym.section_index().unwrap()).unwrap();
        assert_eq!(section.name(), Ok(".data"));
        let text = std::fs::read_to_string(repo_root().join(KMEM_CACHE_SIZE_H)).unwrap();
        let size: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#define KMEM_CACHE_SIZE "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sym.size(), size);
    }

    #[test]
    fn the_header_defines_both_numbers() {
        let h = kmem_cache_size_h(448, 64);
        assert!(h.contains("#define KMEM_CACHE_SIZE 448\n"), "{h}");
        assert!(h.contains("#define KMEM_CACHE_ALIGN 64\n"), "{h}");
        assert!(h.starts_with("/* SPDX"));
    }
}
