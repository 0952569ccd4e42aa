//! `[streams.NAME]` in `sluice.toml`: an inbound webhook the daemon accepts at
//! `POST /hooks/NAME`, stores durably, and hands to the syncs whose `source = "stream:NAME"`.
//! How a request proves it comes from the sender is `signature` (a provider's preset or a plain
//! HMAC or bearer token); checking it is `daemon::signature`.

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The shared secret requests are signed with (or the bearer token): from `${VAR}` or
    /// `secret_file`. Required: an unsigned endpoint would store whatever anyone posts.
    #[schemars(with = "super::schema::Secret")]
    pub secret: SecretString,
    /// How a request is signed: `hmac-sha256` (hex or base64 HMAC-SHA256 of the body, optionally
    /// `sha256=` first, in `header`), `github` (`X-Hub-Signature-256`), `typeform`
    /// (`Typeform-Signature`), `stripe` (`Stripe-Signature`, timestamped), or `bearer`
    /// (`Authorization: Bearer <secret>`).
    #[serde(default)]
    pub signature: SignatureScheme,
    /// The header carrying the signature, when not the preset's (`X-Signature` for
    /// `hmac-sha256`; with `bearer`, a header other than `Authorization` holds the secret as is).
    pub header: Option<String>,
    /// The header naming each delivery, so a provider's retry of one is stored once (`github`:
    /// `X-GitHub-Delivery`).
    pub id_header: Option<String>,
    /// The top-level field of the JSON body naming each delivery, when no header does
    /// (`typeform`: `event_id`, `stripe`: `id`). With neither, every request is a new event.
    pub id_field: Option<String>,
    /// How long events are kept; an event is dropped only once every sync over the stream has
    /// read it, so a failing sync holds its events past this.
    #[serde(default = "default_retain", with = "super::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub retain: std::time::Duration,
    /// The largest body accepted, in bytes; a larger one is refused with 413 and not stored.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// `stripe`: how old a signed timestamp may be (replay protection, Stripe's default 5 minutes).
    #[serde(default = "default_tolerance", with = "super::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub tolerance: std::time::Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// HMAC-SHA256 of the body, hex or base64 (`sha256=` prefix optional), in `header`.
    #[default]
    HmacSha256,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`; deliveries named by `X-GitHub-Delivery`.
    Github,
    /// Typeform: `Typeform-Signature: sha256=<base64>`; deliveries named by the body's `event_id`.
    Typeform,
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex of HMAC(t.body)>`; events named by `id`.
    Stripe,
    /// A token sent as `Authorization: Bearer <secret>`.
    Bearer,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::HmacSha256 => "hmac-sha256",
            SignatureScheme::Github => "github",
            SignatureScheme::Typeform => "typeform",
            SignatureScheme::Stripe => "stripe",
            SignatureScheme::Bearer => "bearer",
        }
    }

    /// The header the preset reads the signature from.
    pub fn default_header(self) -> &'static str {
        match self {
            SignatureScheme::HmacSha256 => "X-Signature",
            SignatureScheme::Github => "X-Hub-Signature-256",
            SignatureScheme::Typeform => "Typeform-Signature",
            SignatureScheme::Stripe => "Stripe-Signature",
            SignatureScheme::Bearer => "Authorization",
        }
    }
}

impl StreamConfig {
    pub fn header(&self) -> &str {
        self.header.as_deref().unwrap_or(self.signature.default_header())
    }

    /// The delivery id's header, the configured one or the preset's.
    pub fn id_header(&self) -> Option<&str> {
        self.id_header.as_deref().or(match self.signature {
            SignatureScheme::Github => Some("X-GitHub-Delivery"),
            _ => None,
        })
    }

    /// The body field naming the delivery, when no header does.
    pub fn id_field(&self) -> Option<&str> {
        if self.id_header.is_some() {
            return self.id_field.as_deref();
        }
        self.id_field.as_deref().or(match self.signature {
            SignatureScheme::Typeform => Some("event_id"),
            SignatureScheme::Stripe => Some("id"),
            _ => None,
        })
    }
}

fn default_retain() -> std::time::Duration {
    std::time::Duration::from_secs(7 * 86_400)
}

fn default_max_body() -> usize {
    1 << 20
}

fn default_tolerance() -> std::time::Duration {
    std::time::Duration::from_secs(300)
}

/// The prefix of a sync's `source` that names a stream: `source = "stream:signups"`.
pub const STREAM_PREFIX: &str = "stream:";

/// The stream a sync's source names, if it names one.
pub fn stream_of(source: &str) -> Option<&str> {
    source.strip_prefix(STREAM_PREFIX)
}
