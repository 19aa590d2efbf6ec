//! Declares the `loom` cfg so `--cfg loom` builds are not warned about as unexpected.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
