//! The OAuth 2.0 JWT bearer flow: an RS256 assertion (iss = consumer key, sub = username,
//! aud = login URL) posted to `{login_url}/services/oauth2/token`; the answer names the org's
//! instance URL, which every API call then goes to.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::destinations::DestinationError;

pub struct Session {
    pub token: SecretString,
    pub instance_url: Url,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    instance_url: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub struct Auth {
    /// Holds the private key: never printed (this type has no Debug).
    key: EncodingKey,
    client_id: String,
    username: String,
    /// The login URL as configured, without a trailing slash: the JWT audience.
    audience: String,
    token_url: Url,
}

impl Auth {
    pub fn new(login_url: &str, client_id: &str, username: &str, private_key: &SecretString) -> Result<Auth, String> {
        let audience = login_url.trim_end_matches('/').to_string();
        let token_url =
            Url::parse(&format!("{audience}/services/oauth2/token")).map_err(|e| format!("`login_url` is not a valid URL: {e}"))?;
        let key = EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes()).map_err(|_| {
            "`private_key` is not a PEM RSA private key: use the key whose certificate is uploaded to the connected app \
             (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                .to_string()
        })?;
        if client_id.trim().is_empty() || username.trim().is_empty() {
            return Err("`client_id` (the connected app's consumer key) and `username` must be set".into());
        }
        Ok(Auth { key, client_id: client_id.into(), username: username.into(), audience, token_url })
    }

    pub async fn login(&self, http: &reqwest::Client) -> Result<Session, DestinationError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = Claims { iss: &self.client_id, sub: &self.username, aud: &self.audience, exp: now + 180 };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| DestinationError::fatal(format!("cannot sign the login assertion: {e}")))?;
        let host = self.token_url.host_str().unwrap_or_default().to_string();
        let what = format!("login to {host}");
        let request = http
            .post(self.token_url.clone())
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())]);
        let answer = crate::destinations::http::send(request, "salesforce", &what, "login_url").await?;
        let status = answer.status;
        let text = answer.body?;
        if status.is_server_error() {
            return Err(DestinationError::transient(format!("login to {host}: HTTP {status}")));
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|_| DestinationError::transient(format!("login to {host}: HTTP {status}: not a token answer")))?;
        match (answer.access_token, answer.instance_url) {
            (Some(token), Some(instance)) => Ok(Session {
                token: SecretString::from(token),
                instance_url: Url::parse(&instance)
                    .map_err(|e| DestinationError::fatal(format!("login to {host}: bad instance_url `{instance}`: {e}")))?,
            }),
            _ => {
                let error = answer.error.unwrap_or_else(|| "no token".into());
                let description = answer.error_description.unwrap_or_default();
                let hint = if description.contains("approve") {
                    "pre-authorize the connected app for the user: Manage Connected Apps > Edit Policies > Admin approved users, then add the user's profile"
                } else {
                    "check `client_id` (the consumer key), `username`, that the app's certificate matches `private_key`, and `login_url` (test.salesforce.com for sandboxes)"
                };
                Err(DestinationError::fatal(format!("login to {host} as {} was refused: {error}: {description} ({hint})", self.username)))
            }
        }
    }
}
