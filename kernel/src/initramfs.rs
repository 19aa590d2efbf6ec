//! The initramfs: a cpio "newc" archive the bootloader loads as its ramdisk.
//!
//! The host launcher packs it (`boot/src/initramfs.rs`), the bootloader maps it, and the kernel
//! reads it in place with the `cpio` crate: nothing is copied.

use spin::Once;

static BYTES: Once<&'static [u8]> = Once::new();

/// Finds the ramdisk the bootloader mapped ([`kcore::boot::ramdisk`]). Without one, the
/// initramfs is empty.
pub fn init() {
    BYTES.call_once(kcore::boot::ramdisk);
}

/// The raw archive.
pub fn bytes() -> &'static [u8] {
    BYTES.get().copied().unwrap_or(&[])
}

/// The archive, ready to list or search.
pub fn archive() -> cpio::Archive<'static> {
    cpio::Archive::new(bytes())
}

/// The contents of the file at `path`, if the initramfs has it.
pub fn file(path: &str) -> Option<&'static [u8]> {
    archive()
        .find(path)
        .filter(|e| e.is_file())
        .map(|e| e.data())
}

#[crate::ktest]
fn lists_the_files_packed_in() {
    use alloc::vec::Vec;

    let names: Vec<&str> = archive()
        .entries()
        .map(|e| e.expect("the runner packs a well-formed archive").name())
        .collect();
    for expected in ["cmdline", "etc/motd", "ktest/fixture.txt"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(
        file("ktest/fixture.txt"),
        Some(&b"sheaf initramfs fixture\n"[..])
    );
    assert_eq!(file("/etc/motd"), Some(&b"Welcome to Sheaf\n"[..]));
}
