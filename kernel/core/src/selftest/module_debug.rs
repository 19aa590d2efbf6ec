//! On-target tests of what debugging needs of the loaded modules: the owner of an address
//! (the oops's `RIP: ... .exit.text+0x4 [hello_c]`) and GDB's table (`SHEAF_MODULES`, read
//! by `tools/gdb/sheaf.py`).

use alloc::string::String;

use crate::kobject::{PageBuf, sysfs};
use crate::module::{self, AddressOwner, ModuleFile};

static HELLO_C: &[u8] = include_bytes!("../../../crates/modload/tests/fixtures/hello_c.ko");

fn section(name: &str) -> u64 {
    let mut buf = PageBuf::new();
    sysfs()
        .read(&alloc::format!("/module/hello_c/sections/{name}"), &mut buf)
        .unwrap_or_else(|e| panic!("sections/{name}: {}", e.0));
    let text = buf.as_str().trim();
    u64::from_str_radix(text.trim_start_matches("0x"), 16).expect(text)
}

/// The owner of `addr`, copied out of the list's lock.
fn owner(addr: u64) -> Option<(String, String, u64)> {
    module::address_owner(addr, |o: AddressOwner<'_>| {
        (String::from(o.module), String::from(o.section), o.offset)
    })
}

fn load_hello_c() {
    let file = ModuleFile::trusted(HELLO_C).expect("the fixture is in the image's read-only data");
    crate::console::capture_start();
    let r = module::load(file, "hello_c", &[]);
    let mut out = String::with_capacity(4096);
    crate::console::capture_stop(&mut out);
    r.expect("hello_c loads");
}

#[crate::ktest]
fn an_address_in_a_module_names_the_module_section_and_offset() {
    load_hello_c();
    let exit = section(".exit.text");
    assert_eq!(
        owner(exit + 4),
        Some((String::from("hello_c"), String::from(".exit.text"), 4))
    );
    assert_eq!(
        owner(exit),
        Some((String::from("hello_c"), String::from(".exit.text"), 0))
    );
    // The oops's words, Linux's style.
    let line = module::address_owner(exit + 0x10, |o| alloc::format!("{o}"));
    assert_eq!(line.as_deref(), Some(".exit.text+0x10 [hello_c]"));
    let rodata = section(".rodata");
    assert_eq!(
        owner(rodata + 1),
        Some((String::from("hello_c"), String::from(".rodata"), 1))
    );
    // `.exit.text` is 0x15 bytes: its end is not in it.
    assert_ne!(
        owner(exit + 0x15).map(|o| o.1).as_deref(),
        Some(".exit.text")
    );
    // The init text was freed when the module went live: no longer the module's.
    let init = section(".init.text");
    assert_eq!(owner(init), None);
    // The kernel's own code, a null pointer, the top of memory: no module's.
    assert_eq!(owner((load_hello_c as fn()) as usize as u64), None);
    assert_eq!(owner(0), None);
    assert_eq!(owner(u64::MAX), None);
    // With the list locked (an oops while loading), the lookup gives up at once.
    {
        let _list = module::listed_modules();
        assert_eq!(owner(exit + 4), None);
    }
    module::unload("hello_c", false).expect("hello_c unloads");
    assert_eq!(owner(exit + 4), None, "an unloaded module owns nothing");
}

#[crate::ktest]
fn gdb_table_follows_loads_and_unloads() {
    let before = module::debug::read_gdb_table();
    assert!(!before.iter().any(|(n, _)| n == "hello_c"), "{before:?}");
    load_hello_c();
    let table = module::debug::read_gdb_table();
    let (_, sections) = table
        .iter()
        .find(|(n, _)| n == "hello_c")
        .unwrap_or_else(|| panic!("hello_c in GDB's table: {table:?}"));
    // Every section of /sys/module/hello_c/sections, at the same address.
    for name in [".text", ".exit.text", ".init.text", ".rodata", ".data"] {
        let addr = section(name);
        assert!(
            sections.iter().any(|(s, a)| s == name && *a == addr),
            "{name} at {addr:#x} in {sections:?}"
        );
    }
    assert_eq!(table.len(), module::list().len());
    module::unload("hello_c", false).expect("hello_c unloads");
    let after = module::debug::read_gdb_table();
    assert!(!after.iter().any(|(n, _)| n == "hello_c"), "{after:?}");
    assert_eq!(after.len(), before.len());
}

#[crate::ktest]
fn a_backtrace_names_a_module_function_and_its_module() {
    load_hello_c();
    let exit = section(".exit.text");
    let named = crate::backtrace::symbolize(exit + 4, |s| {
        s.map(|s| (String::from(s.name), s.offset, alloc::format!("{s}")))
    });
    let (name, offset, line) = named.expect("an address in the module is named");
    assert!(
        !name.starts_with('.'),
        "a function, not the section: {line}"
    );
    assert_eq!(offset, 4, "{line}");
    assert!(line.ends_with(" [hello_c]"), "{line}");
    let mut out = String::new();
    crate::backtrace::format_frame(&mut out, exit + 4, false).expect("formatted");
    assert_eq!(out, alloc::format!(" {line}\n"));
    module::unload("hello_c", false).expect("hello_c unloads");
    assert!(
        !crate::backtrace::symbolize(exit + 4, |s| s.is_some()),
        "an unloaded module names nothing"
    );
}
