//! The `duro` binary: see `duro::cli`.

/// Configures the allocator before anything allocates (an ELF constructor runs before Rust's own
/// start-up, which already allocates).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00099")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn configure() {
        duro::memory::configure();
    }
    configure
};

fn main() -> std::process::ExitCode {
    duro::cli::main()
}
