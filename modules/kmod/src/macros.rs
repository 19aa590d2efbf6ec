//! `module!`, `module_param!`, `export_symbol!`: the sections the loader reads.

/// One `key=value` entry in `.modinfo`.
#[macro_export]
macro_rules! modinfo {
    ($key:literal, $value:expr) => {
        const _: () = {
            const TEXT: &str = concat!($key, "=", $value, "\0");
            #[unsafe(link_section = ".modinfo")]
            #[used]
            static ENTRY: [u8; TEXT.len()] = $crate::bytes(TEXT);
        };
    };
}

/// Declares the module: its name, license and the rest of `.modinfo`, `init_module` (from a
/// `fn() -> Result<(), Errno>`), `cleanup_module` (from a `fn()`; without `exit`, the module
/// cannot be unloaded) and its parameters (see [`module_param!`]).
///
/// ```ignore
/// kmod::module! {
///     name: "hello",
///     license: "GPL",
///     description: "Hello world",
///     author: "Sheaf",
///     init: hello_init,
///     exit: hello_exit,
///     params: {
///         TIMES: AtomicI32 = AtomicI32::new(1), "times", 0o644, "how many greetings";
///     },
/// }
/// ```
#[macro_export]
macro_rules! module {
    (
        name: $name:literal,
        license: $license:literal,
        $(description: $desc:literal,)?
        $(author: $author:literal,)?
        init: $init:path,
        $(exit: $exit:path,)?
        $(params: { $($pstatic:ident : $pty:ty = $pinit:expr, $pname:literal, $pperm:literal, $pdesc:literal;)* },)?
    ) => {
        $crate::modinfo!("name", $name);
        $crate::modinfo!("license", $license);
        $($crate::modinfo!("description", $desc);)?
        $($crate::modinfo!("author", $author);)?

        /// The module's entry point, called once by the loader.
        #[unsafe(no_mangle)]
        pub extern "C" fn init_module() -> i32 {
            let init: fn() -> Result<(), $crate::Errno> = $init;
            match init() {
                Ok(()) => 0,
                Err(e) => -e.0,
            }
        }

        $(
            /// Called by `rmmod` before the module's memory goes.
            #[unsafe(no_mangle)]
            pub extern "C" fn cleanup_module() {
                let exit: fn() = $exit;
                exit()
            }
        )?

        $($(
            $crate::module_param!($pstatic: $pty = $pinit, $pname, $pperm, $pdesc);
        )*)?
    };
}

/// A parameter: a static atomic `$var` (`AtomicI32` int, `AtomicU32` uint, `AtomicI64` long,
/// `AtomicU64` ulong, `AtomicBool` bool, `AtomicPtr<u8>` charp) that `insmod m.ko
/// $name=value` sets before init, its descriptor in `.sheaf.params`, and its `parmtype=` and
/// `parm=` entries.
#[macro_export]
macro_rules! module_param {
    ($var:ident : $ty:ty = $init:expr, $name:literal, $perm:literal, $desc:literal) => {
        pub static $var: $ty = $init;
        const _: () = {
            assert!($perm & 0o002 == 0, "parameters are never world-writable");
            static NAME: [u8; concat!($name, "\0").len()] = $crate::bytes(concat!($name, "\0"));
            #[unsafe(link_section = ".sheaf.params")]
            #[used]
            static DESC: $crate::ParamDesc = $crate::ParamDesc {
                name: NAME.as_ptr(),
                arg: &raw const $var as *const (),
                kind: <$ty as $crate::ParamType>::KIND,
                perm: $perm,
                flags: 0,
            };
            const PARTS: &[&str] = &[
                "parmtype=",
                $name,
                ":",
                <$ty as $crate::ParamType>::NAME,
                "\0",
            ];
            #[unsafe(link_section = ".modinfo")]
            #[used]
            static PARMTYPE: [u8; $crate::concat_len(PARTS)] = $crate::concat_bytes(PARTS);
        };
        $crate::modinfo!("parm", concat!($name, ":", $desc));
    };
}

/// Exports `$sym` (a `#[unsafe(no_mangle)]` item of the module) to modules loaded later.
#[macro_export]
macro_rules! export_symbol {
    ($sym:ident) => {
        $crate::__export!($sym, ".sheaf.exports");
    };
}

/// Exports `$sym` to GPL-compatible modules only.
#[macro_export]
macro_rules! export_symbol_gpl {
    ($sym:ident) => {
        $crate::__export!($sym, ".sheaf.exports_gpl");
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($sym:ident, $section:literal) => {
        const _: () = {
            #[allow(unused_imports)]
            use $sym as _;
            const TEXT: &str = concat!(stringify!($sym), "\0");
            #[unsafe(link_section = $section)]
            #[used]
            static NAME: [u8; TEXT.len()] = $crate::bytes(TEXT);
        };
    };
}
