//! Kernel modules for the image: find them in `lib/modules/<version>`, pick the
//! wanted ones with every dependency, decompress them, and write
//! `modules.dep` / `modules.alias` / `modules.softdep` for exactly those.
//!
//! Works without depmod's output (the Debian package ships none): the
//! dependency and alias data come from each module's own `.modinfo`.

mod decompress;
mod defaults;
mod depfiles;
mod elf;
mod index;
mod modinfo;
mod name;
mod select;
#[cfg(test)]
mod test_elf;

pub use decompress::{decompress, Compression, DecompressError, MAX_MODULE_SIZE};
pub use defaults::DEFAULT_MODULES;
pub use depfiles::{modules_alias, modules_dep, modules_softdep};
pub use elf::{modinfo_section, ElfError, ReadAt};
pub use index::{IndexError, LoadedModule, ModuleFile, ModuleIndex};
pub use modinfo::ModInfo;
pub use name::{alias_matches, normalize_module_name};
pub use select::{select_modules, ModuleSelection, SelectError, SelectedModule};
