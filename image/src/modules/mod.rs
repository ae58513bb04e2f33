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
mod select;
#[cfg(test)]
mod test_elf;

pub use decompress::{decompress, Compression, DecompressError, MAX_MODULE_SIZE};
pub use defaults::{DEFAULT_MODULES, HARDWARE_MODULES};
pub use depfiles::{modules_alias, modules_dep, modules_softdep};
pub use elf::{modinfo_section, ElfError, ReadAt};
pub use index::{IndexError, LoadedModule, ModuleFile, ModuleIndex};
/// Module names and alias globs live in landfall-formats (the agent reads what
/// this crate writes); re-exported under the names this crate always used.
pub use landfall_formats::kmod::{alias_matches, module_name as normalize_module_name};
pub use modinfo::ModInfo;
pub use select::{select_modules, ModuleSelection, SelectError, SelectedModule};
