//! The policy: one readable YAML file, parsed with positions (`parse`), compiled into map
//! entries by pure code (`compile`), installed into the kernel atomically (`install`).

pub mod compile;
pub mod engine;
pub mod install;
pub mod model;
pub mod network;
pub mod parse;
pub mod posture;
pub mod watch;

#[cfg(test)]
mod tests;

use std::{fmt, path::Path};

pub use model::{Action, Mode, Policy};
pub use parse::{Parsed, PolicyError};

/// The embedded default policy (`sensor policy default`).
pub const DEFAULT: &str = include_str!("default.yaml");

/// A policy read from somewhere, with what identifies it.
#[derive(Debug)]
pub struct Source {
    /// File path, or `<default>`.
    pub origin: String,
    pub text: String,
}

impl Source {
    pub fn default_policy() -> Self {
        Self {
            origin: "<default>".into(),
            text: DEFAULT.into(),
        }
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            origin: path.display().to_string(),
            text: std::fs::read_to_string(path)?,
        })
    }

    /// FNV-1a of the text: names a policy version in events.
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Errors of one file, each as `FILE:LINE:COL: message`.
#[derive(Debug)]
pub struct Rejected {
    pub origin: String,
    pub errors: Vec<PolicyError>,
}

impl Rejected {
    pub fn lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|e| format!("{}:{e}", self.origin))
            .collect()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for Rejected {}

pub fn parse_source(source: &Source) -> Result<Parsed, Rejected> {
    parse::parse(&source.text).map_err(|errors| Rejected {
        origin: source.origin.clone(),
        errors,
    })
}
