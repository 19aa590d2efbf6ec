//! The module loader lab's graded tests (`cargo lab grade modules`, docs/labs/04-module-loader.md):
//! the student's `compute` (kernel/crates/modload/src/relocate.rs) against a table of values,
//! the example modules loaded and unloaded (their relocations applied and their symbols
//! resolved by the student's code), and malformed copies of them refused, each with its own
//! error and nothing left behind. Every failure says what was expected and where to look.
//!
//! Each test also checks something only a working loader does (a module that loads), so a
//! loader that refuses everything scores nothing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use modload::ErrorKind as K;
use modload::rela::RelocType;
use modload::relocate::compute;

use super::module::{captured, file, fixture, footprint, slab_objects_in_use};
use crate::module::{self, LoadError, ModuleFile, errno};

static HELLO: &[u8] = fixture!("hello.ko");
static HELLO_C: &[u8] = fixture!("hello_c.ko");
static EXPORTER: &[u8] = fixture!("exporter.ko");
static USER: &[u8] = fixture!("user.ko");
static RUST_USER: &[u8] = fixture!("rust_user.ko");

/// Where to look, for a load that failed with `e`.
fn look(e: &LoadError) -> &'static str {
    match e.kind {
        Some(K::UndefinedSymbol | K::GplOnlySymbol) => {
            "look at the symbol lookup in kernel/crates/modload/src/resolve.rs"
        }
        Some(K::UnknownRelocation | K::RelocationOverflow) => {
            "look at compute in kernel/crates/modload/src/relocate.rs (and the compute test)"
        }
        _ => "see the handout, docs/labs/04-module-loader.md",
    }
}

/// Loads fixture `name` (from `bytes`) with `args`, panicking in the student's terms if it fails.
#[track_caller]
fn load_ok(bytes: &'static [u8], name: &str, args: &[&str], uses: &str) -> String {
    let (r, out) = captured(|| module::load(file(bytes), name, args));
    if let Err(e) = r {
        panic!(
            "loading {name}.ko failed: {e} -- it should load: it uses {uses}; {}",
            look(&e)
        );
    }
    out
}

/// Unloads `name`, panicking if that fails; returns what it printed.
#[track_caller]
fn unload_ok(name: &str) -> String {
    let (r, out) = captured(|| module::unload(name, false));
    r.unwrap_or_else(|e| panic!("unloading {name} failed: {e}"));
    out
}

#[crate::ktest]
fn compute_gives_each_relocation_its_value_or_refuses_it() {
    use RelocType::{Abs32, Abs32S, Abs64, GotPcRel, GotPcRelX, Pc32, Pc64, Plt32, RexGotPcRelX};
    // Addresses as the kernel gives them: the kernel image and the modules in the top 2 GiB,
    // the direct map far below.
    const KERNEL: u64 = 0xffff_ffff_8010_0000;
    const MODULE: u64 = 0xffff_ffff_c000_1000;
    const FAR: u64 = 0xffff_8880_0000_0000;
    // (type, S, A, P, GOT entry, the value's low `width` bytes or None for a refusal)
    type Case = (RelocType, u64, i64, u64, u64, Option<u64>);
    let cases: &[Case] = &[
        (Abs64, KERNEL, 0x10, MODULE, 0, Some(KERNEL + 0x10)),
        (Abs64, FAR, -8, MODULE, 0, Some(FAR - 8)),
        (Abs64, KERNEL, i64::MAX, MODULE, 0, None),
        (Pc64, MODULE + 0x2000, -4, MODULE, 0, Some(0x1ffc)),
        (Pc64, FAR, 0, MODULE, 0, Some(FAR.wrapping_sub(MODULE))),
        (Pc64, u64::MAX, i64::MAX, 0, 0, None),
        (Pc64, 0, i64::MIN, 1, 0, None),
        (Pc32, MODULE + 0x3000, -4, MODULE, 0, Some(0x2ffc)),
        (
            Pc32,
            KERNEL,
            -4,
            MODULE,
            0,
            Some(KERNEL.wrapping_sub(4 + MODULE) & 0xffff_ffff),
        ),
        (Pc32, FAR, -4, MODULE, 0, None),
        (Pc32, MODULE, 0x1_0000_0000, MODULE, 0, None),
        (
            Plt32,
            KERNEL,
            -4,
            MODULE,
            0,
            Some(KERNEL.wrapping_sub(4 + MODULE) & 0xffff_ffff),
        ),
        (Plt32, FAR, -4, MODULE, 0, None),
        (Abs32, 0x1000, 0x10, MODULE, 0, Some(0x1010)),
        (Abs32, 0xffff_0000, 0xffff, MODULE, 0, Some(0xffff_ffff)),
        (Abs32, 0xffff_0000, 0x1_0000, MODULE, 0, None),
        (Abs32, MODULE, 0, MODULE, 0, None),
        (Abs32, 0x10, -0x20, MODULE, 0, None),
        (
            Abs32S,
            KERNEL,
            8,
            MODULE,
            0,
            Some((KERNEL + 8) & 0xffff_ffff),
        ),
        (Abs32S, 0x7fff_fff0, 0xf, MODULE, 0, Some(0x7fff_ffff)),
        (Abs32S, 0x7fff_ffff, 1, MODULE, 0, None),
        (Abs32S, 0xffff_ffff_7fff_0000, 0, MODULE, 0, None),
        (Abs32S, FAR, 0, MODULE, 0, None),
        (GotPcRel, FAR, -4, MODULE, MODULE + 0x4000, Some(0x3ffc)),
        (GotPcRelX, FAR, -4, MODULE, MODULE + 0x4000, Some(0x3ffc)),
        (RexGotPcRelX, FAR, -4, MODULE, MODULE + 0x4000, Some(0x3ffc)),
        (GotPcRel, MODULE, -4, MODULE, FAR, None),
    ];
    let mut wrong: Vec<String> = Vec::new();
    for &(t, s, a, p, g, want) in cases {
        let w = t.width() as usize;
        let got = compute(t, s, a, p, g);
        let call = format!(
            "compute({}, S {s:#x}, A {a:#x}, P {p:#x}, GOT entry {g:#x})",
            t.name()
        );
        match (want, &got) {
            (Some(v), Ok(bytes)) if bytes[..w] == v.to_le_bytes()[..w] => {}
            (None, Err(_)) => {}
            (Some(v), _) => wrong.push(format!(
                "{call}: expected Ok with {v:#x} in its low {w} bytes, your compute returned {got:x?}"
            )),
            (None, Ok(_)) => wrong.push(format!(
                "{call}: expected Err (the value does not fit the {w}-byte field), your compute \
                 returned {got:x?}"
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases of compute in kernel/crates/modload/src/relocate.rs are wrong, the \
         first: {}\nall of them:\n{}",
        wrong.len(),
        cases.len(),
        wrong.first().map_or("", String::as_str),
        wrong.join("\n")
    );
    // R_X86_64_NONE writes nothing (its width is 0) and is never refused.
    assert!(
        compute(RelocType::None, FAR, i64::MAX, 0, 0).is_ok(),
        "compute(R_X86_64_NONE, ..) must succeed: it writes nothing"
    );
}

#[crate::ktest]
fn hello_c_loads_prints_and_unloads() {
    let before = footprint();
    let out = load_ok(
        HELLO_C,
        "hello_c",
        &["whom=sheaf", "times=2"],
        "R_X86_64_64, PC32, PLT32 and 32S relocations and the kernel's printk",
    );
    for line in [
        "hello_c: hello, sheaf (1 of 2)",
        "hello_c: hello, sheaf (2 of 2)",
    ] {
        assert!(
            out.contains(line),
            "hello_c loaded but its init_module did not print `{line}`: a relocation wrote a \
             wrong value (relocate.rs) or a symbol resolved to a wrong address (resolve.rs); \
             it printed:\n{out}"
        );
    }
    let out = unload_ok("hello_c");
    assert!(
        out.contains("hello_c: goodbye, sheaf"),
        "hello_c's cleanup_module did not print `hello_c: goodbye, sheaf`: its parameter \
         `whom` (an R_X86_64_64 in .data) was not relocated right; it printed:\n{out}"
    );
    assert_eq!(footprint(), before, "hello_c left something behind");
}

#[crate::ktest]
fn the_rust_hello_loads_prints_and_unloads() {
    let before = footprint();
    let out = load_ok(
        HELLO,
        "hello",
        &["times=3", "loud"],
        "R_X86_64_64, PC32, PLT32, 32S and GOTPCREL relocations (a GOT entry: G + GOT + A - P)",
    );
    assert!(
        out.contains("hello: HELLO FROM RUST (3 of 3)"),
        "hello (Rust) loaded but did not print `hello: HELLO FROM RUST (3 of 3)`: a \
         relocation wrote a wrong value (relocate.rs); it printed:\n{out}"
    );
    let out = unload_ok("hello");
    assert!(
        out.contains("hello: goodbye from Rust"),
        "hello's cleanup did not print `hello: goodbye from Rust`; it printed:\n{out}"
    );
    assert_eq!(footprint(), before, "hello left something behind");
}

#[crate::ktest]
fn user_links_against_the_exporter_s_symbols() {
    let before = footprint();
    load_ok(
        EXPORTER,
        "exporter",
        &[],
        "the kernel's exports (slab, printk) and exports symbols of its own",
    );
    let out = load_ok(
        USER,
        "user",
        &[],
        "exporter_add, exported GPL-only by the module exporter (loaded): resolve.rs must \
         find it in `source`, which has the loaded modules' exports too",
    );
    assert!(
        out.contains("user: exporter_add(40, 2) = 42"),
        "user loaded but did not print `user: exporter_add(40, 2) = 42`: exporter_add resolved \
         to a wrong address (resolve.rs) or the call's PLT32 was wrong; it printed:\n{out}"
    );
    let out = load_ok(
        RUST_USER,
        "rust_user",
        &[],
        "exporter_add, from the exporter",
    );
    assert!(
        out.contains("rust_user: exporter_add(40, 2) = 42"),
        "rust_user did not print `rust_user: exporter_add(40, 2) = 42`; it printed:\n{out}"
    );
    let exporter = module::list()
        .into_iter()
        .find(|m| m.name == "exporter")
        .expect("exporter listed");
    let mut used_by = exporter.used_by.clone();
    used_by.sort();
    assert_eq!(
        used_by,
        ["rust_user", "user"],
        "the exporter's users: resolve.rs must record each module whose exports a module \
         uses (the export's `owner`, once, in `uses`)"
    );
    let e = module::unload("exporter", false).expect_err("exporter in use");
    assert_eq!(e.errno, errno::EWOULDBLOCK, "{e}");
    unload_ok("user");
    unload_ok("rust_user");
    let out = unload_ok("exporter");
    assert!(
        out.contains("exporter: unloaded after 2 calls"),
        "exporter counted the wrong number of calls: {out}"
    );
    assert_eq!(footprint(), before, "the modules left something behind");
}

#[crate::ktest]
fn unknown_and_gpl_only_symbols_are_refused() {
    let before = footprint();
    // Without the exporter, exporter_add is unknown: refused naming it, -ENOENT.
    let e = module::load(file(USER), "user", &[]).expect_err("user without its exporter");
    assert!(
        e.kind == Some(K::UndefinedSymbol) && e.errno == errno::ENOENT,
        "loading user.ko without the exporter: expected an unknown-symbol refusal \
         (ErrorKind::UndefinedSymbol, -ENOENT) from resolve.rs, got: {e}"
    );
    assert!(
        e.message.contains("exporter_add"),
        "the unknown-symbol refusal must name exporter_add (resolve.rs): {e}"
    );
    assert_eq!(
        footprint(),
        before,
        "the refused user.ko left something behind"
    );

    load_ok(EXPORTER, "exporter", &[], "the kernel's exports");
    // exporter_add is GPL-only: user under the MIT license must be refused.
    let b = super::module::user_ko_licensed_mit();
    // SAFETY: a copy of user.ko with another license string: it is refused before any of its
    // code runs, or, with a loader that accepts it, it runs as user.ko does (unloaded below).
    let r = module::load(unsafe { ModuleFile::new_unchecked(&b) }, "user", &[]);
    let refused = match r {
        Ok(_) => {
            let _ = captured(|| module::unload("user", false));
            None
        }
        Err(e) => Some(e),
    };
    let e = refused.expect(
        "user.ko under the MIT license loaded, using exporter_add, which the exporter exports \
         GPL-only: resolve.rs must refuse a GPL-only export to a module that is not \
         GPL-compatible (ErrorKind::GplOnlySymbol)",
    );
    assert!(
        e.kind == Some(K::GplOnlySymbol) && e.message.contains("exporter_add"),
        "user.ko (MIT) with exporter_add GPL-only: expected ErrorKind::GplOnlySymbol naming \
         exporter_add (resolve.rs), got: {e}"
    );
    // And under its own license (GPL) it links.
    let out = load_ok(USER, "user", &[], "exporter_add, with the GPL license");
    assert!(out.contains("user: exporter_add(40, 2) = 42"), "{out}");
    unload_ok("user");
    unload_ok("exporter");
    drop(b);
    assert_eq!(footprint(), before, "the modules left something behind");
}

/// The file offset of the first relocation of type `rtype` in `elf` whose target section is
/// loaded (`SHF_ALLOC`).
fn first_rela_of(elf: &[u8], rtype: u32) -> Option<usize> {
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().expect("4"));
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8"));
    let (shoff, shnum) = (u64_at(0x28) as usize, u16_at(0x3c));
    let header = |i: usize| shoff + 64 * i;
    (1..shnum).find_map(|i| {
        let h = header(i);
        let target = u32_at(h + 0x2c) as usize;
        if u32_at(h + 4) != 4 || target >= shnum || u64_at(header(target) + 8) & 2 == 0 {
            return None;
        }
        let (off, size) = (u64_at(h + 0x18) as usize, u64_at(h + 0x20) as usize);
        (off..off + size)
            .step_by(24)
            .find(|&e| u32_at(e + 8) == rtype)
    })
}

#[crate::ktest]
fn overflowing_relocations_are_refused_leaving_nothing() {
    // The unchanged file loads (a loader that refuses everything does not pass).
    load_ok(
        HELLO_C,
        "hello_c",
        &[],
        "R_X86_64_64, PC32, PLT32 and 32S relocations",
    );
    unload_ok("hello_c");
    // One relocation of each type given an addend that makes its value not fit.
    let cases: &[(&str, u32, i64)] = &[
        ("R_X86_64_PC32", 2, 0x1_0000_0000),
        ("R_X86_64_PLT32", 4, -0x1_0000_0000),
        ("R_X86_64_32S", 11, -0x8000_0000),
        ("R_X86_64_64", 1, i64::MAX),
    ];
    let mut copies: Vec<(&str, Vec<u8>)> = Vec::new();
    for &(name, rtype, addend) in cases {
        let at = first_rela_of(HELLO_C, rtype).expect("hello_c has such a relocation");
        let mut b = HELLO_C.to_vec();
        b[at + 16..at + 24].copy_from_slice(&addend.to_le_bytes());
        copies.push((name, b));
    }
    let before = footprint();
    let objects = slab_objects_in_use();
    for (name, b) in &copies {
        // SAFETY: a copy of hello_c.ko with one addend changed so that its relocation
        // overflows: refused before any of its code runs (a load that succeeds fails the test
        // at once, unloading it first).
        let r = module::load(unsafe { ModuleFile::new_unchecked(b) }, "hello_c", &[]);
        let e = match r {
            Ok(_) => {
                let _ = captured(|| module::unload("hello_c", false));
                panic!(
                    "hello_c.ko with an {name} that does not fit its field loaded: compute \
                     (kernel/crates/modload/src/relocate.rs) must return Err for it"
                );
            }
            Err(e) => e,
        };
        assert!(
            e.kind == Some(K::RelocationOverflow) && e.errno == errno::ENOEXEC,
            "hello_c.ko with an overflowing {name}: expected a relocation overflow \
             (ErrorKind::RelocationOverflow, -ENOEXEC), got: {e}"
        );
        assert!(
            e.message.contains(name),
            "the overflow refusal should name the type {name} (compute's Err message): {e}"
        );
        assert_eq!(
            footprint(),
            before,
            "hello_c.ko with an overflowing {name} was refused but left something behind"
        );
    }
    drop(copies);
    slab_objects_in_use().assert_none_left_since(&objects, "after the refusals");
}
