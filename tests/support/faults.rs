//! What an emulator can be told to do to a request instead of (or besides) answering it.

use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer with this status and the service's own error body for it.
    Status(u16),
    /// Close the connection without an answer, before doing anything.
    Drop,
    /// Do what was asked at once, but answer this much later.
    Slow(Duration),
    /// Do what was asked, then close the connection: the client cannot know it was done.
    DropAfter,
    /// Revoke every token, then answer 401 (a token that expired or was revoked server-side).
    Revoke,
}

/// Closes the connection the handler is serving: the unwind ends the connection's task without
/// an answer, and without the panic hook printing anything.
pub fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("emulated dropped connection"))
}
