//! Assembles the RAM image.
