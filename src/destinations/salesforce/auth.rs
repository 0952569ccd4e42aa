//! The OAuth 2.0 JWT bearer flow: an RS256 assertion (iss = consumer key, sub = username,
//! aud = the audience) posted to `{login_url}/services/oauth2/token`; the answer names the org's
//! instance URL, which every API call then goes to.
//!
//! The audience is not the login URL: Salesforce wants `https://login.salesforce.com` for
//! production orgs and `https://test.salesforce.com` for sandboxes (or an Experience Cloud
//! site's URL), even when the token is asked of a My Domain URL (Salesforce Help, "OAuth 2.0
//! JWT Bearer Flow for Server-to-Server Integration").

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
    /// The destination's name (`/metrics` labels the token requests with it).
    name: String,
    /// Holds the private key: never printed (this type has no Debug).
    key: EncodingKey,
    client_id: String,
    username: String,
    /// The JWT audience (see the module docs).
    audience: String,
    token_url: Url,
}

impl Auth {
    pub fn new(
        name: &str,
        login_url: &str,
        audience: Option<&str>,
        client_id: &str,
        username: &str,
        private_key: &SecretString,
    ) -> Result<Auth, String> {
        let login = login_url.trim_end_matches('/');
        let token_url =
            Url::parse(&format!("{login}/services/oauth2/token")).map_err(|e| format!("`login_url` is not a valid URL: {e}"))?;
        let audience = match audience {
            Some(a) => a.trim_end_matches('/').to_string(),
            None => default_audience(&token_url).into(),
        };
        let key = EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes()).map_err(|_| {
            "`private_key` is not a PEM RSA private key: use the key whose certificate is uploaded to the connected app \
             (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                .to_string()
        })?;
        if client_id.trim().is_empty() || username.trim().is_empty() {
            return Err("`client_id` (the connected app's consumer key) and `username` must be set".into());
        }
        Ok(Auth { name: name.to_string(), key, client_id: client_id.into(), username: username.into(), audience, token_url })
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
        let answer = crate::destinations::http::send(request, &self.name, &what, "login_url").await?;
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
                let hint = if description.contains("audience") {
                    "set `audience`: https://login.salesforce.com for a production org, https://test.salesforce.com for a sandbox \
                     (sluice guesses from `login_url`'s host), or the Experience Cloud site's URL"
                } else if description.contains("approve") {
                    "pre-authorize the connected app for the user: Manage Connected Apps > Edit Policies > Admin approved users, then add the user's profile"
                } else {
                    "check `client_id` (the consumer key), `username`, that the app's certificate matches `private_key`, and `login_url` (test.salesforce.com for sandboxes)"
                };
                Err(DestinationError::fatal(format!("login to {host} as {} was refused: {error}: {description} ({hint})", self.username)))
            }
        }
    }
}

/// The audience for a login URL's host: sandboxes (`test.salesforce.com`, a My Domain under
/// `sandbox.my.salesforce.com`) use `https://test.salesforce.com`, everything else
/// `https://login.salesforce.com`.
pub fn default_audience(login: &Url) -> &'static str {
    let host = login.host_str().unwrap_or_default().to_ascii_lowercase();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com"
    } else {
        "https://login.salesforce.com"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_follows_the_kind_of_org_not_the_login_url() {
        let aud = |u: &str| default_audience(&Url::parse(u).unwrap());
        assert_eq!(aud("https://login.salesforce.com"), "https://login.salesforce.com");
        assert_eq!(aud("https://acme.my.salesforce.com"), "https://login.salesforce.com");
        assert_eq!(aud("https://test.salesforce.com"), "https://test.salesforce.com");
        assert_eq!(aud("https://acme--uat.sandbox.my.salesforce.com"), "https://test.salesforce.com");
    }
}
