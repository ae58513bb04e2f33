//! The qemu harness for landfall end-to-end tests.
