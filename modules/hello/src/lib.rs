//! `hello` in Rust: prints on load and unload; `insmod hello.ko times=3 loud=1` changes what.

#![no_std]

use core::sync::atomic::Ordering::Relaxed;
use kmod::{AtomicBool, AtomicI32, Errno, pr_info};

kmod::module! {
    name: "hello",
    license: "GPL",
    description: "Hello world in Rust, with parameters",
    author: "Sheaf",
    init: hello_init,
    exit: hello_exit,
    params: {
        TIMES: AtomicI32 = AtomicI32::new(1), "times", 0o644, "how many greetings";
        LOUD: AtomicBool = AtomicBool::new(false), "loud", 0o444, "shout";
    },
}

fn hello_init() -> Result<(), Errno> {
    let times = TIMES.load(Relaxed);
    for i in 0..times {
        if LOUD.load(Relaxed) {
            pr_info!("hello: HELLO FROM RUST ({} of {})\n", i + 1, times);
        } else {
            pr_info!("hello: hello from Rust ({} of {})\n", i + 1, times);
        }
    }
    // A buffer from kmalloc, freed when it drops.
    let mut buf = kmod::mem::KBuf::zeroed(64).ok_or(Errno::ENOMEM)?;
    buf.as_mut_slice()[0] = 1;
    Ok(())
}

fn hello_exit() {
    pr_info!("hello: goodbye from Rust\n");
}
