//! A caught panic's message, for the places that turn a panic into an error instead of a lost
//! run (the engine around a run's work, DuckDB's reader thread).

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
