//! C headers generated from the kernel build (Linux's `asm-offsets` idea): the numbers a C
//! module needs but cannot compute, because the types behind them are Rust.
//!
//! `include/generated/kmem_cache_size.h` gives the size and alignment of the kernel's
//! `KmemCache`, so that C code can declare a static cache (`struct kmem_cache_opaque`,
//! `include/sheaf/slab-static.h`) without seeing its fields. The kernel exports the two numbers
//! as the symbol [`LAYOUT_SYMBOL`] (two little-endian `u64`s); this module reads them from the
//! kernel ELF. `include/generated/module_abi.h` gives the sizes and alignments of the
//! structures a C module embeds (`struct rcu_head`, `struct work_struct`, `struct
//! delayed_work`, `struct kmem_free_q_head`), from the symbol [`ABI_LAYOUT_SYMBOL`] (the export
//! table's `kernel/entry/export/mod.rs`); `include/sheaf/module.h` sizes the structures with
//! them. `cargo run -- --gen-headers` rewrites the checked-in files; the host trial
//! `headers::kmem_cache_size_h_is_current` fails when either is stale.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};

/// The kernel's symbol holding `[size, align]` of `KmemCache` (`kcore::memory::kmalloc`).
pub const LAYOUT_SYMBOL: &str = "SHEAF_KMEM_CACHE_LAYOUT";

/// The header's path in the source tree, relative to the repository root.
pub const KMEM_CACHE_SIZE_H: &str = "include/generated/kmem_cache_size.h";

/// The kernel's symbol holding `[size, align]` of each structure of [`ABI_STRUCTS`].
pub const ABI_LAYOUT_SYMBOL: &str = "SHEAF_MODULE_ABI_LAYOUT";

/// The module ABI header's path in the source tree, relative to the repository root.
pub const MODULE_ABI_H: &str = "include/generated/module_abi.h";

/// The structures of [`ABI_LAYOUT_SYMBOL`], in its order: the C name and the macro prefix.
pub const ABI_STRUCTS: [(&str, &str); 4] = [
    ("struct rcu_head", "SHEAF_RCU_HEAD"),
    ("struct work_struct", "SHEAF_WORK_STRUCT"),
    ("struct delayed_work", "SHEAF_DELAYED_WORK"),
    ("struct kmem_free_q_head", "SHEAF_KMEM_FREE_Q_HEAD"),
];

/// The repository root (where `include/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("boot/ sits in the repository")
        .to_owned()
}

/// Reads `words` little-endian `u64`s at symbol `name` of the kernel ELF.
fn symbol_words(kernel: &Path, name: &str, words: usize) -> Result<Vec<u64>, String> {
    let data = std::fs::read(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let elf = object::File::parse(&*data).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let sym = elf
        .symbols()
        .find(|s| s.name() == Ok(name))
        .ok_or_else(|| format!("{}: no symbol {name}", kernel.display()))?;
    let section = sym
        .section_index()
        .and_then(|i| elf.section_by_index(i).ok())
        .ok_or_else(|| format!("{name} is not in a section"))?;
    let bytes = section
        .data_range(sym.address(), 8 * words as u64)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{name} lies outside its section's data"))?;
    Ok((0..words)
        .map(|i| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap()))
        .collect())
}

/// Reads `[size, align]` of `KmemCache` from the kernel ELF.
pub fn kmem_cache_layout(kernel: &Path) -> Result<(u64, u64), String> {
    let w = symbol_words(kernel, LAYOUT_SYMBOL, 2)?;
    Ok((w[0], w[1]))
}

/// Reads `[size, align]` of each structure of [`ABI_STRUCTS`] from the kernel ELF.
pub fn module_abi_layout(kernel: &Path) -> Result<[(u64, u64); 4], String> {
    let w = symbol_words(kernel, ABI_LAYOUT_SYMBOL, 8)?;
    Ok([(w[0], w[1]), (w[2], w[3]), (w[4], w[5]), (w[6], w[7])])
}

/// The text of `module_abi.h` for the structures' `[size, align]`, in [`ABI_STRUCTS`] order.
pub fn module_abi_h(layout: &[(u64, u64); 4]) -> String {
    let mut defs = String::new();
    for ((c, prefix), (size, align)) in ABI_STRUCTS.iter().zip(layout) {
        defs +=
            &format!("/* {c} */\n#define {prefix}_SIZE {size}\n#define {prefix}_ALIGN {align}\n");
    }
    format!(
        "/* SPDX-License-Identifier: MIT OR Apache-2.0 */\n\
         /*\n \
         * Generated from the kernel build by `cargo run -- --gen-headers`: do not edit.\n \
         * The size and alignment of each structure a C module embeds whose layout is the\n \
         * kernel's (Rust types; sheaf/module.h sizes the structures with them).\n \
         */\n\
         #ifndef _GENERATED_MODULE_ABI_H\n\
         #define _GENERATED_MODULE_ABI_H\n\
         \n\
         {defs}\
         \n\
         #endif /* _GENERATED_MODULE_ABI_H */\n"
    )
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
    let abi = module_abi_layout(kernel)?;
    let mut written = Vec::new();
    for (rel, text) in [
        (KMEM_CACHE_SIZE_H, kmem_cache_size_h(size, align)),
        (MODULE_ABI_H, module_abi_h(&abi)),
    ] {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a directory"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Compares the checked-in headers at `root` with what the kernel at `kernel` says.
pub fn check(kernel: &Path, root: &Path) -> Result<(), String> {
    let abi = module_abi_layout(kernel)?;
    let path = root.join(MODULE_ABI_H);
    let have = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if have != module_abi_h(&abi) {
        return Err(format!(
            "{} is stale: the kernel's layouts are {abi:?}; run `cargo run -- --gen-headers`",
            path.display()
        ));
    }
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

    /// Compiles `src` to `obj` with `cc` as modules are built (the repository's `include/`,
    /// `-mcmodel=kernel`, warnings as errors, and `extra`), failing with the compiler's output.
    fn compile_c(src: &std::path::Path, obj: &std::path::Path, extra: &[&str]) {
        let out = std::process::Command::new("cc")
            .args([
                "-std=gnu11",
                "-Wall",
                "-Werror",
                "-fno-pic",
                "-mcmodel=kernel",
            ])
            .args(extra)
            .args(["-c", "-I"])
            .arg(repo_root().join("include"))
            .arg(src)
            .arg("-o")
            .arg(obj)
            .output()
            .expect("a C compiler (cc)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

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
        compile_c(&src, &obj, &[]);
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

    /// `module.h` compiles with the checked-in `module_abi.h` (its `_Static_assert`s compare
    /// each embedded structure with the generated size and alignment), and the macros a
    /// module uses expand to code gcc accepts.
    #[test]
    fn module_h_compiles_with_the_generated_abi_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        let obj = dir.path().join("t.o");
        std::fs::write(
            &src,
            "#include \"sheaf/module.h\"\n\
             struct foo { int x; struct rcu_head rcu; struct work_struct w; };\n\
             static void fn(struct work_struct *w) { (void)w; }\n\
             static struct delayed_work dw;\n\
             void t(struct foo *f) {\n\
               DEFINE_KMEM_FREE_Q(q);\n\
               INIT_WORK(&f->w, fn); INIT_DELAYED_WORK(&dw, fn);\n\
               kfree_rcu(f, rcu); kfree_rcu_mightsleep(f); kmem_free_up_q(&q);\n\
             }\n",
        )
        .unwrap();
        compile_c(&src, &obj, &["-Wextra"]);
    }

    #[test]
    fn the_abi_header_defines_every_number() {
        let h = module_abi_h(&[(24, 8), (16, 8), (16, 8), (24, 8)]);
        assert!(h.contains("#define SHEAF_RCU_HEAD_SIZE 24\n"), "{h}");
        assert!(
            h.contains("#define SHEAF_KMEM_FREE_Q_HEAD_ALIGN 8\n"),
            "{h}"
        );
        assert!(h.starts_with("/* SPDX") && h.ends_with("#endif /* _GENERATED_MODULE_ABI_H */\n"));
    }

    #[test]
    fn the_header_defines_both_numbers() {
        let h = kmem_cache_size_h(448, 64);
        assert!(h.contains("#define KMEM_CACHE_SIZE 448\n"), "{h}");
        assert!(h.contains("#define KMEM_CACHE_ALIGN 64\n"), "{h}");
        assert!(h.starts_with("/* SPDX"));
    }
}
