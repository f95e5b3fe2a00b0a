//! Present so that `sensor`'s build script can depend on this crate: cargo then rebuilds the
//! kernel programs whenever anything here changes. The programs themselves are the binary.
#![no_std]
