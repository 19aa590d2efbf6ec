//! The shell's module commands, as Linux's kmod tools answer: `insmod FILE [name=value...]`,
//! `rmmod [-f] NAME`, `lsmod`, `modinfo FILE`, and `modbench` (what loading costs).
//!
//! A module file is looked for in the initramfs: at the path given, then under
//! `/lib/modules/` (where `cargo run` packs the examples), each also with `.ko` added; so
//! `insmod hello.ko` and `insmod /lib/modules/hello.ko` are the same module, and a file added
//! with `cargo run -- --initrd-add path/to/m.ko` (at the root) is found by its name.

use alloc::string::String;
use alloc::vec::Vec;

use kcore::module::{self, ModuleFile};

use crate::memory::kmalloc::with_reserve;
use crate::println;

/// The module file `arg` names in the initramfs: its bytes and its file name.
fn find_module(arg: &str) -> Option<(&'static [u8], &str)> {
    let path = arg.trim_start_matches('/');
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let candidates = [
        String::from(path),
        alloc::format!("{path}.ko"),
        alloc::format!("lib/modules/{path}"),
        alloc::format!("lib/modules/{path}.ko"),
    ];
    candidates
        .iter()
        .find_map(|c| crate::initramfs::file(c))
        .map(|bytes| (bytes, file_name))
}

/// Finds the module file for `cmd`, or says why not.
fn module_file(cmd: &str, arg: &str) -> Option<(ModuleFile<'static>, &'static [u8], String)> {
    let Some((bytes, file_name)) = find_module(arg) else {
        println!("{cmd}: ERROR: could not find module {arg}: No such file or directory");
        return None;
    };
    // Files of the initramfs are in the boot ramdisk: trusted (see `kcore::module`).
    let Some(file) = ModuleFile::trusted(bytes) else {
        println!("{cmd}: ERROR: {arg} is not in the initramfs");
        return None;
    };
    let file_name = String::from(file_name.strip_suffix(".ko").unwrap_or(file_name));
    Some((file, bytes, file_name))
}

/// `insmod FILE [name=value ...]`.
pub(super) fn insmod(args: &[&str]) {
    let Some((&path, params)) = args.split_first() else {
        return println!("usage: insmod FILE [name=value ...]");
    };
    let Some((file, _, file_name)) = with_reserve(|| module_file("insmod", path)) else {
        return;
    };
    // The loader's bookkeeping (vectors of the file's sections and symbols) may come from the
    // emergency reserve when memory is exhausted; the module's own memory cannot, and fails
    // with -ENOMEM.
    match with_reserve(|| module::load(file, &file_name, params)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("insmod: {w}");
            }
        }
        Err(e) => println!("insmod: ERROR: could not insert module {path}: {e}"),
    }
}

/// `rmmod [-f] NAME`.
pub(super) fn rmmod(args: &[&str]) {
    let (force, names) = match args {
        ["-f", rest @ ..] | ["--force", rest @ ..] => (true, rest),
        _ => (false, args),
    };
    if names.is_empty() {
        return println!("usage: rmmod [-f] NAME...");
    }
    for name in names {
        // `rmmod hello.ko` and `rmmod /lib/modules/hello.ko` name the module, as kmod's do.
        let name = name.rsplit('/').next().unwrap_or(name);
        let name = name.strip_suffix(".ko").unwrap_or(name);
        let result = with_reserve(|| module::unload(&name.replace('-', "_"), force));
        if let Err(e) = result {
            println!("rmmod: ERROR: could not remove module {name}: {e}");
        }
    }
}

/// `lsmod`: the columns of Linux's (`Module`, `Size`, `Used by`).
pub(super) fn lsmod(_: &[&str]) {
    println!("{:<19} {:>8}  Used by", "Module", "Size");
    for m in with_reserve(module::list) {
        let state = match m.state {
            module::State::Live => "",
            module::State::Coming => " [loading]",
            module::State::Going => " [unloading]",
        };
        let sep = if m.used_by.is_empty() { "" } else { " " };
        println!(
            "{:<19} {:>8}  {}{sep}{}{state}",
            m.name,
            m.size,
            m.refcount,
            m.used_by.join(",")
        );
    }
}

/// `modinfo FILE`: every `.modinfo` key, then the parameters with their types, as Linux's.
/// Its small allocations may come from the emergency reserve.
pub(super) fn modinfo(args: &[&str]) {
    let [path] = args else {
        return println!("usage: modinfo FILE");
    };
    with_reserve(|| modinfo_of(path));
}

fn modinfo_of(path: &str) {
    let Some((_, bytes, file_name)) = with_reserve(|| module_file("modinfo", path)) else {
        return;
    };
    let parsed = match with_reserve(|| modload::Module::parse(bytes, &file_name)) {
        Ok(m) => m,
        Err(e) => return println!("modinfo: ERROR: {path}: {e}"),
    };
    println!("{:<16}{}", "filename:", path);
    println!("{:<16}{}", "name:", parsed.name());
    let mut parm_lines: Vec<String> = Vec::new();
    for &(key, value) in &parsed.info().entries {
        match key {
            "parm" | "parmtype" | "name" => {}
            _ => println!("{:<16}{}", alloc::format!("{key}:"), value),
        }
    }
    for p in parsed.params() {
        let desc = parsed.info().parm_description(p.name).unwrap_or("");
        let sep = if desc.is_empty() { "" } else { " " };
        parm_lines.push(alloc::format!("{}:{desc}{sep}({})", p.name, p.kind.name()));
    }
    for line in parm_lines {
        println!("{:<16}{}", "parm:", line);
    }
}

/// `modbench [N]`: what `insmod hello` costs, next to a cache create of the same boot: cycles
/// (median of N loads, 20 by default) and single-stepped instructions, and the memory `hello`
/// takes (`bench::module`).
pub(super) fn modbench(args: &[&str]) {
    let n = match args {
        [] => 20,
        [w] => match w.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return println!("modbench: N must be a number from 1 to 1000"),
        },
        _ => return println!("usage: modbench [N]"),
    };
    let Some((file, _, file_name)) = with_reserve(|| module_file("modbench", "hello.ko")) else {
        return;
    };
    // hello greets on every load and unload (KERN_INFO): quiet while measuring, as
    // `dmesg -n 4` would make it.
    let old = kcore::console::set_loglevel(4);
    let report = bench::module::module_bench(file, &file_name, n);
    kcore::console::set_loglevel(old);
    let r = match report {
        Ok(r) => r,
        Err(e) => return println!("modbench: {e}"),
    };
    println!(
        "insmod hello.ko to init_module returning: {} cycles (median of {}); rmmod: {} cycles",
        r.load_cycles, r.rounds, r.unload_cycles
    );
    println!(
        "kmem_cache_create of a 64-byte cache, same boot: {} cycles (median of {})",
        r.create_cycles, r.rounds
    );
    println!(
        "instructions (single-stepped): insmod {}, kmem_cache_create {} ({:.1}x)",
        r.load_instructions,
        r.create_instructions,
        r.load_instructions as f64 / r.create_instructions.max(1) as f64
    );
    println!(
        "memory: lsmod size {} bytes ({} pages); MODULES pages held while loaded: {} \
         (one guard page per region)",
        r.core_size,
        r.core_size / 4096,
        r.pages_taken
    );
}
