//! The loader's front door: [`Module`] ties the steps together in the order the kernel calls
//! them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use object::elf;

use crate::elf::{ElfFile, MODINFO};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::exports::{self, ModuleExport};
use crate::layout::{Layout, Region};
use crate::modinfo::{ModInfo, module_name};
use crate::params::{self, Param, ParamValue};
use crate::rela::{self, RelaSection};
use crate::relocate::{self, Image};
use crate::resolve::{self, Resolved, SymbolSource};
use crate::symbols::{Place, SymbolTable};

/// A module file that passed every check, with its layout planned.
#[derive(Debug)]
pub struct Module<'a> {
    name: String,
    info: ModInfo<'a>,
    file: ElfFile<'a>,
    syms: SymbolTable<'a>,
    relas: Vec<RelaSection>,
    layout: Layout,
    exports: Vec<ModuleExport<'a>>,
    params: Vec<Param<'a>>,
    init: Option<usize>,
    cleanup: Option<usize>,
}

impl<'a> Module<'a> {
    /// Steps 1–4: checks the whole file (header, sections, symbols, relocations, `.modinfo`,
    /// exports, parameters, entry points) and plans the layout. `file_name` gives the module's
    /// name when `.modinfo` has no `name=`.
    pub fn parse(data: &'a [u8], file_name: &str) -> Result<Self> {
        let file = ElfFile::parse(data)?;
        let syms = SymbolTable::parse(&file)?;
        let relas = rela::parse(&file, &syms)?;
        let info = match file.sections.iter().find(|s| s.name == MODINFO) {
            Some(s) => ModInfo::parse(s.data)?,
            None => ModInfo::default(),
        };
        let name = module_name(&info, file_name)?;
        let layout = Layout::plan(&file, &relas)?;
        let exports = exports::parse(&file, &syms)?;
        let params = params::parse(&file, &syms, &relas, &layout, &info)?;
        let init = entry_point(&file, &syms, &layout, "init_module")?;
        let cleanup = entry_point(&file, &syms, &layout, "cleanup_module")?;
        Ok(Module {
            name,
            info,
            file,
            syms,
            relas,
            layout,
            exports,
            params,
            init,
            cleanup,
        })
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `.modinfo`.
    pub fn info(&self) -> &ModInfo<'a> {
        &self.info
    }

    /// The layout plan: the size and permissions of each region to allocate.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The module's exports (for the modules loaded after it).
    pub fn exports(&self) -> &[ModuleExport<'a>] {
        &self.exports
    }

    /// The module's parameters.
    pub fn params(&self) -> &[Param<'a>] {
        &self.params
    }

    /// Whether the module can be unloaded (it has a `cleanup_module`, as on Linux).
    pub fn has_cleanup(&self) -> bool {
        self.cleanup.is_some()
    }

    /// Step 5: resolves undefined symbols against `source`; `__this_module` resolves to
    /// `this_module`, the address of the module's handle in the kernel.
    pub fn resolve<S: SymbolSource>(
        &self,
        source: &S,
        this_module: u64,
    ) -> Result<Resolved<S::Owner>> {
        resolve::resolve(
            &self.syms,
            &self.exports,
            source,
            self.info.is_gpl_compatible(),
            self.info.license(),
            this_module,
        )
    }

    /// Step 6: copies the sections into `image` (mapped writable by the kernel at the
    /// addresses it holds), zeroes `.bss`, fills the GOT and applies every relocation. After
    /// this the kernel sets parameters, seals the regions ([`Region::perms_during_init`]) and
    /// calls [`Module::init_address`].
    pub fn write_image<O>(&self, resolved: &Resolved<O>, image: &mut Image<'_>) -> Result<()> {
        if resolved.addresses.len() != self.syms.symbols.len() {
            return Err(Error::new(
                ErrorKind::BadImage,
                Location::File,
                "resolution of another module",
            ));
        }
        relocate::write_image(
            &self.file,
            &self.syms,
            &self.relas,
            &self.layout,
            &resolved.addresses,
            image,
        )
    }

    /// The run-time address of section `index`, if it is loaded.
    pub fn section_address(&self, image: &Image<'_>, index: usize) -> Option<u64> {
        self.layout
            .placement(index)
            .map(|p| image.addr(p.region) + p.offset)
    }

    /// Every loaded section: name, region, run-time address (`/sys/module/*/sections`) and size.
    pub fn loaded_sections<'s>(
        &'s self,
        image: &'s Image<'_>,
    ) -> impl Iterator<Item = (&'a str, Region, u64, u64)> + 's {
        self.file.sections.iter().filter_map(move |s| {
            let p = self.layout.placement(s.index)?;
            Some((s.name, p.region, image.addr(p.region) + p.offset, s.size))
        })
    }

    /// Every named function symbol defined in a loaded section: name, run-time address and
    /// size (what a backtrace names a module's frames with, Linux's module kallsyms).
    pub fn functions<'s>(
        &'s self,
        image: &'s Image<'_>,
    ) -> impl Iterator<Item = (&'a str, u64, u64)> + 's {
        self.syms.symbols.iter().filter_map(move |s| match s.place {
            Place::Section(si) if s.kind == elf::STT_FUNC && !s.name.is_empty() => self
                .section_address(image, si)
                .map(|a| (s.name, a + s.value, s.size)),
            _ => None,
        })
    }

    /// Every data object symbol (`STT_OBJECT`) with a size, defined in a loaded section:
    /// run-time address and size. What the kernel checks a module's static storage against
    /// (a `struct kmem_cache` given to `kmem_cache_setup` must be one object, or inside one,
    /// as large as the kernel's: a module built against another kernel's header is refused
    /// instead of having its neighbours overwritten).
    pub fn objects<'s>(&'s self, image: &'s Image<'_>) -> impl Iterator<Item = (u64, u64)> + 's {
        self.syms.symbols.iter().filter_map(move |s| match s.place {
            Place::Section(si) if s.kind == elf::STT_OBJECT && s.size > 0 => self
                .section_address(image, si)
                .map(|a| (a + s.value, s.size)),
            _ => None,
        })
    }

    fn defined_address(&self, image: &Image<'_>, sym: usize) -> Option<u64> {
        let s = self.syms.get(sym);
        match s.place {
            Place::Section(si) => self.section_address(image, si).map(|a| a + s.value),
            Place::Absolute => Some(s.value),
            Place::Undefined => None,
        }
    }

    /// The address of `init_module` (`None`: the module has none, and loading it just runs
    /// nothing, as on Linux).
    pub fn init_address(&self, image: &Image<'_>) -> Option<u64> {
        self.init.and_then(|i| self.defined_address(image, i))
    }

    /// The address of `cleanup_module`.
    pub fn cleanup_address(&self, image: &Image<'_>) -> Option<u64> {
        self.cleanup.and_then(|i| self.defined_address(image, i))
    }

    /// The address of an export, for the kernel's table of module exports.
    pub fn export_address(&self, image: &Image<'_>, export: &ModuleExport<'_>) -> Option<u64> {
        self.defined_address(image, export.sym)
    }

    /// The address of a defined global symbol of the module, by name.
    pub fn symbol_address(&self, image: &Image<'_>, name: &str) -> Option<u64> {
        self.syms
            .globals
            .get(name)
            .and_then(|&i| self.defined_address(image, i))
    }

    /// The run-time address of a parameter's variable.
    pub fn param_address(&self, image: &Image<'_>, param: &Param<'_>) -> u64 {
        // Checked by `params::parse`: the variable's section is placed in data.
        self.section_address(image, param.section).unwrap_or(0) + param.offset
    }

    /// Sets parameter `name` from `insmod`'s `name=value` (`value` is `None` for a bare
    /// `name`): parses the value and, for every type but `charp`, writes it into the image.
    /// For a `charp` the kernel copies the returned string and writes the copy's address at
    /// [`Module::param_address`] with [`Image::write`].
    pub fn set_param<'v>(
        &self,
        image: &mut Image<'_>,
        name: &str,
        value: Option<&'v str>,
    ) -> Result<ParamValue<'v>> {
        let Some(p) = self.params.iter().find(|p| p.name == name) else {
            return Err(Error::new(
                ErrorKind::BadParam,
                Location::Modinfo,
                format!("`{name}` is not a parameter of {}", self.name),
            ));
        };
        let v = p.kind.parse(value).map_err(|m| {
            Error::new(
                ErrorKind::BadParam,
                Location::Modinfo,
                format!("parameter `{name}`: {m}"),
            )
        })?;
        if let Some(bytes) = v.scalar_bytes() {
            image.write(self.param_address(image, p), &bytes)?;
        }
        Ok(v)
    }
}

/// `init_module`/`cleanup_module`, if defined: a global function in loaded text.
fn entry_point(
    file: &ElfFile<'_>,
    syms: &SymbolTable<'_>,
    layout: &Layout,
    name: &str,
) -> Result<Option<usize>> {
    let Some(&i) = syms.globals.get(name) else {
        return Ok(None);
    };
    let s = syms.get(i);
    let in_text = match s.place {
        Place::Section(si) => layout
            .placement(si)
            .is_some_and(|p| matches!(p.region, Region::Text | Region::InitText)),
        _ => false,
    };
    if s.kind != elf::STT_FUNC || !in_text {
        let sec = match s.place {
            Place::Section(si) => file.sections[si].name,
            _ => "(no section)",
        };
        return Err(Error::new(
            ErrorKind::BadEntryPoint,
            Location::Symbol {
                index: i,
                name: name.into(),
            },
            format!(
                "`{name}` must be a function in the module's text (type {}, in `{sec}`)",
                s.kind
            ),
        ));
    }
    Ok(Some(i))
}
