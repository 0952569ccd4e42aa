//! Service-account OAuth through yup-oauth2: it signs a JWT with the key, posts it to the key's
//! `token_uri` and caches the token until a minute before it expires.

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;
use yup_oauth2::authenticator::DefaultAuthenticator;
use yup_oauth2::{ServiceAccountAuthenticator, ServiceAccountKey};

use super::config::SCOPE;
use crate::destinations::DestinationError;

pub struct Auth {
    /// Holds the private key: never printed (this type has no Debug).
    key: ServiceAccountKey,
    /// Built on first use: building loads the system's root certificates.
    authenticator: OnceCell<DefaultAuthenticator>,
}

impl Auth {
    /// Reads and checks a service-account key; `token_url` overrides its `token_uri`.
    pub fn new(credentials: &SecretString, token_url: Option<&str>) -> Result<Auth, String> {
        let json = credentials.expose_secret();
        if !json.trim_start().starts_with('{') {
            return Err("`credentials` is not JSON: set `credentials_file` to the path of the service account's key file \
                 (IAM > Service accounts > Keys > Add key > JSON), or `credentials_json` to its contents"
                .into());
        }
        // serde's message names the missing field and a position, never the content.
        let mut key: ServiceAccountKey = serde_json::from_str(json)
            .map_err(|e| format!("the service-account key is malformed ({e}): download a new JSON key for the service account"))?;
        if key.key_type.as_deref().is_some_and(|t| t != "service_account") {
            return Err(format!(
                "the credentials are of type `{}`, not `service_account`: create a key for a service account",
                key.key_type.as_deref().unwrap_or_default()
            ));
        }
        if key.private_key.contains("BEGIN RSA PRIVATE KEY") {
            return Err("the service-account `private_key` is PKCS#1 (BEGIN RSA PRIVATE KEY); convert it to PKCS#8 with \
                 `openssl pkcs8 -topk8 -nocrypt`, or download a new JSON key"
                .into());
        }
        if !key.private_key.contains("BEGIN PRIVATE KEY") {
            return Err("the service-account `private_key` is not a PEM private key: download a new JSON key".into());
        }
        if let Some(url) = token_url {
            key.token_uri = url.to_string();
        }
        reqwest::Url::parse(&key.token_uri).map_err(|e| format!("the token URL `{}` is not a valid URL: {e}", key.token_uri))?;
        Ok(Auth { key, authenticator: OnceCell::new() })
    }

    pub fn client_email(&self) -> &str {
        &self.key.client_email
    }

    /// A current access token (cached).
    pub async fn token(&self) -> Result<SecretString, DestinationError> {
        let auth = self.authenticator().await?;
        let token = auth.token(&[SCOPE]).await.map_err(|e| self.token_error(e))?;
        Self::secret(token)
    }

    /// A new access token, for when the API refused the cached one (401).
    pub async fn refresh(&self) -> Result<SecretString, DestinationError> {
        let auth = self.authenticator().await?;
        let token = auth.force_refreshed_token(&[SCOPE]).await.map_err(|e| self.token_error(e))?;
        Self::secret(token)
    }

    async fn authenticator(&self) -> Result<&DefaultAuthenticator, DestinationError> {
        self.authenticator
            .get_or_try_init(|| ServiceAccountAuthenticator::builder(self.key.clone()).build())
            .await
            .map_err(|e| DestinationError::fatal(format!("cannot set up the OAuth client: {e}")))
    }

    fn secret(token: yup_oauth2::AccessToken) -> Result<SecretString, DestinationError> {
        token
            .token()
            .map(|t| SecretString::from(t.to_string()))
            .ok_or_else(|| DestinationError::transient("the token endpoint answered without an access token"))
    }

    /// Whether a token failure is worth retrying: refusals are not (the key is wrong, revoked or
    /// its account deleted); a token endpoint that cannot be reached may be.
    fn token_error(&self, e: yup_oauth2::Error) -> DestinationError {
        use yup_oauth2::Error as E;
        let host = reqwest::Url::parse(&self.key.token_uri).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        match e {
            E::AuthError(refusal) => DestinationError::fatal(format!(
                "the token endpoint ({host}) refused the service account {}: {refusal} \
                 (check the key is current and not deleted, and that the machine's clock is right)",
                self.key.client_email
            )),
            E::HttpError(_) | E::HttpClientError(_) => {
                DestinationError::transient(format!("could not reach the token endpoint ({host}) for an access token"))
            }
            // A body that is neither a token nor an OAuth error: typically a 5xx page.
            E::JSONError(_) | E::MissingAccessToken => {
                DestinationError::transient(format!("the token endpoint ({host}) answered with something other than a token"))
            }
            E::LowLevelError(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                DestinationError::transient(format!("the token endpoint ({host}) timed out"))
            }
            other => DestinationError::fatal(format!("could not get an access token for {}: {other}", self.key.client_email)),
        }
    }
}
