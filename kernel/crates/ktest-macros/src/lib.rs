//! The `#[ktest]` attribute: register an on-target kernel test.
//!
//! ```ignore
//! #[ktest]
//! fn heap_boxes_work() { assert_eq!(*Box::new(7), 7); }
//!
//! #[ktest(fault = "page_fault")]      // passes only if this CPU fault happens
//! fn unmapped_read_faults() { ... }
//!
//! #[ktest(uefi)]                       // runs in a boot of its own through UEFI firmware
//! fn booted_through_uefi() { ... }
//!
//! #[ktest(smp = 8, numa = 2)]           // needs a machine with 8 CPUs on 2 NUMA nodes
//! fn eight_cpus_on_two_nodes() { ... }
//! ```
//!
//! The attribute keeps the function only where the crate's `ktest` feature is on (the kernel
//! `cargo test` builds; `cargo run`'s kernel has no tests) and adds a `static` descriptor of type
//! `crate::ktest::KTest` in the `ktests` linker section. The linker gathers every descriptor of
//! the kernel into one array bounded by `__start_ktests`/`__stop_ktests`, which the kernel walks
//! to list and run its tests: no central registry to keep in sync.
//!
//! Written against `proc_macro` alone (no `syn`): the input is a plain `fn name() { .. }`, so
//! finding the name is a scan for the `fn` keyword.

#![forbid(unsafe_code)]

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Registers the function that follows as an on-target kernel test. See the crate docs.
#[proc_macro_attribute]
pub fn ktest(attr: TokenStream, item: TokenStream) -> TokenStream {
    let Args {
        fault,
        uefi,
        smp,
        numa,
    } = match parse_args(attr) {
        Ok(args) => args,
        Err(msg) => return compile_error(msg),
    };
    let Some(name) = fn_name(&item) else {
        return compile_error("#[ktest] goes on a function: `fn name() { .. }`");
    };

    let fault = match fault {
        Some(kind) => format!("::core::option::Option::Some({kind:?})"),
        None => "::core::option::Option::None".to_string(),
    };
    let smp = optional_u32(smp);
    let numa = optional_u32(numa);
    let descriptor = format!(
        "#[used]
         #[unsafe(link_section = \"ktests\")]
         #[doc(hidden)]
         static __KTEST_{upper}: crate::ktest::KTest = crate::ktest::KTest {{
             module: ::core::module_path!(),
             name: {name:?},
             func: {name},
             fault: {fault},
             uefi: {uefi},
             smp: {smp},
             numa: {numa},
         }};",
        upper = name.to_uppercase(),
    );
    // The test and its descriptor exist only in a kernel built for testing (the crate's
    // `ktest` feature, which `cargo test` turns on): the kernel `cargo run` boots has none.
    let mut out: TokenStream = "#[cfg(feature = \"ktest\")]"
        .parse()
        .expect("attribute is valid Rust");
    out.extend(item);
    out.extend(
        "#[cfg(feature = \"ktest\")]"
            .parse::<TokenStream>()
            .expect("valid"),
    );
    out.extend(
        descriptor
            .parse::<TokenStream>()
            .expect("descriptor is valid Rust"),
    );
    out
}

/// What the attribute's arguments ask for.
struct Args {
    fault: Option<String>,
    uefi: bool,
    smp: Option<u32>,
    numa: Option<u32>,
}

/// `Some(n)` / `None` as Rust source.
fn optional_u32(value: Option<u32>) -> String {
    match value {
        Some(n) => format!("::core::option::Option::Some({n})"),
        None => "::core::option::Option::None".to_string(),
    }
}

/// Parses `fault = "kind"`, `uefi`, `smp = N` and `numa = N`, separated by commas.
fn parse_args(attr: TokenStream) -> Result<Args, &'static str> {
    const USAGE: &str = "expected #[ktest] or #[ktest(fault = \"kind\", uefi, smp = N, numa = N)]";
    let mut args = Args {
        fault: None,
        uefi: false,
        smp: None,
        numa: None,
    };
    let mut tokens = attr.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let TokenTree::Ident(id) = token else {
            return Err(USAGE);
        };
        let key = id.to_string();
        if key == "uefi" {
            args.uefi = true;
        } else {
            let value = match (tokens.next(), tokens.next()) {
                (Some(TokenTree::Punct(eq)), Some(TokenTree::Literal(lit)))
                    if eq.as_char() == '=' =>
                {
                    lit.to_string()
                }
                _ => return Err(USAGE),
            };
            match key.as_str() {
                "fault" => {
                    let kind = value
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .ok_or(USAGE)?;
                    args.fault = Some(kind.to_string());
                }
                "smp" => args.smp = Some(value.parse().map_err(|_| USAGE)?),
                "numa" => args.numa = Some(value.parse().map_err(|_| USAGE)?),
                _ => return Err(USAGE),
            }
        }
        match tokens.next() {
            None => break,
            Some(TokenTree::Punct(p)) if p.as_char() == ',' => {}
            Some(_) => return Err(USAGE),
        }
    }
    Ok(args)
}

/// The identifier after the `fn` keyword, if the item is a function.
fn fn_name(item: &TokenStream) -> Option<String> {
    let mut tokens = item.clone().into_iter();
    while let Some(token) = tokens.next() {
        if let TokenTree::Ident(id) = &token
            && id.to_string() == "fn"
        {
            return match tokens.next() {
                Some(TokenTree::Ident(name)) => Some(name.to_string()),
                _ => None,
            };
        }
    }
    None
}

/// `compile_error!("msg")` as a token stream, pointing at the attribute.
fn compile_error(msg: &str) -> TokenStream {
    let span = Span::call_site();
    let mut bang = Punct::new('!', Spacing::Alone);
    bang.set_span(span);
    let mut args = TokenStream::new();
    args.extend([TokenTree::Literal(Literal::string(msg))]);
    let mut group = Group::new(Delimiter::Parenthesis, args);
    group.set_span(span);
    let mut semi = Punct::new(';', Spacing::Alone);
    semi.set_span(span);
    [
        TokenTree::Ident(Ident::new("compile_error", span)),
        TokenTree::Punct(bang),
        TokenTree::Group(group),
        TokenTree::Punct(semi),
    ]
    .into_iter()
    .collect()
}
