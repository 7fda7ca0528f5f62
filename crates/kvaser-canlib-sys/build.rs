//! Generates the bindings from `kvaser.h` (this project's own declarations of Kvaser's
//! documented API) with bindgen: the types and constants once, and each library's functions
//! as a struct that loads them at run time (`LinLib`, `CanLib`), so that nothing links against
//! Kvaser's libraries at build time. Needs libclang (Debian: libclang-dev).

use std::{env, path::PathBuf};

fn builder() -> bindgen::Builder {
    bindgen::Builder::default()
        .header("kvaser.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .layout_tests(true)
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    builder()
        .ignore_functions()
        .allowlist_type("Lin.*|can.*")
        .allowlist_var("lin.*|LIN_.*|can.*")
        .generate()
        .expect("bindgen: types and constants of kvaser.h")
        .write_to_file(out.join("types.rs"))
        .unwrap();
    for (library, functions, file) in [
        ("LinLib", "lin.*", "linlib.rs"),
        ("CanLib", "can.*", "canlib.rs"),
    ] {
        builder()
            .allowlist_function(functions)
            .allowlist_recursively(false)
            .dynamic_library_name(library)
            .dynamic_link_require_all(true)
            .generate()
            .unwrap_or_else(|e| panic!("bindgen: {library} from kvaser.h: {e}"))
            .write_to_file(out.join(file))
            .unwrap();
    }
}
