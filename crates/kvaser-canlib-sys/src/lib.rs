//! Raw bindings to the parts of Kvaser's LINlib and CANlib that vxbus's `kvaser-lin` plugin
//! uses, generated at build time by bindgen from `kvaser.h`, a header this project wrote from
//! Kvaser's published API documentation.
//!
//! Nothing links against Kvaser's libraries: [`LinLib::new`] and [`CanLib::new`] load
//! `liblinlib.so.1` and `libcanlib.so.1` at run time (from a path the caller chooses) and fail,
//! rather than panic, when a library or one of the symbols below is missing. Every function is
//! `unsafe` as C declares it; the safe wrappers are the `kvaser-canlib` crate.
//!
//! `unsigned long` is `c_ulong`: 8 bytes on 64-bit Linux, so [`LinMessageInfo`] is 136 bytes
//! there (68 where `long` is 4 bytes).
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/types.rs"));

mod linlib {
    #![allow(clippy::all)]
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/linlib.rs"));
}
mod canlib {
    #![allow(clippy::all)]
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/canlib.rs"));
}
pub use canlib::CanLib;
/// The loader the generated structs use; its `Error` is what `new` returns.
pub use libloading;
pub use linlib::LinLib;

/// The file names Kvaser's Linux SDK installs the libraries under.
pub const LINLIB_SONAME: &str = "liblinlib.so.1";
/// See [`LINLIB_SONAME`].
pub const CANLIB_SONAME: &str = "libcanlib.so.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lin_message_info_has_the_c_layout_of_this_target() {
        let long = std::mem::size_of::<std::os::raw::c_ulong>();
        // 4 longs, 2 bytes + a short, 4 + 8 longs; padded to a long.
        let expected = 4 * long + 4 + 12 * long + if long == 8 { 4 } else { 0 };
        assert_eq!(std::mem::size_of::<LinMessageInfo>(), expected);
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        assert_eq!(std::mem::size_of::<LinMessageInfo>(), 136);
    }

    #[test]
    fn a_missing_library_is_an_error_not_a_panic() {
        let err = unsafe { LinLib::new("/nonexistent/liblinlib.so.1") }.err();
        assert!(err.is_some());
    }
}
