//! `figures!`: a line of a test's measured figures in `make test`'s output. libtest keeps what
//! `println!` writes and shows it only for a failing test; this goes to the process's stderr
//! directly, so the figures of the soak and the fault tests are in the CI log when they pass.

#[macro_export]
macro_rules! figures {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr().lock(), "figures: {line}");
    }};
}
