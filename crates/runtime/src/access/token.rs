//! Bearer tokens: `lsd_<token id, 32 hex>_<secret, 64 hex>`. The secret is 256 bits from the
//! operating system's generator, shown once; the store keeps only its SHA-256 hash, compared in
//! constant time. The id in front lets the server find the one stored hash to compare with.

use licensd_engine::Uuid;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every licensd token (recognisable in secret scanners and logs).
pub const TOKEN_PREFIX: &str = "lsd_";

/// A token as handed to its owner: its id and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token_id: Uuid,
    secret: [u8; 32],
}

impl std::fmt::Debug for IssuedToken {
    /// Never prints the secret.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "IssuedToken({})", self.token_id)
    }
}

/// Why a string is not a licensd token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFormatError {
    #[error("a licensd token starts with '{TOKEN_PREFIX}'")]
    Prefix,
    #[error("a licensd token is '{TOKEN_PREFIX}' followed by 32 hexadecimal digits, '_' and 64 hexadecimal digits")]
    Shape,
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(String);

impl IssuedToken {
    /// A new token with a random id and a 256-bit random secret.
    pub fn generate() -> Result<IssuedToken, RandomnessError> {
        let mut bytes = [0u8; 48];
        getrandom::fill(&mut bytes).map_err(|error| RandomnessError(error.to_string()))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&bytes[16..]);
        Ok(IssuedToken {
            token_id: uuid::Builder::from_random_bytes(id).into_uuid(),
            secret,
        })
    }

    /// Parses a token presented by a client.
    pub fn parse(text: &str) -> Result<IssuedToken, TokenFormatError> {
        let rest = text.strip_prefix(TOKEN_PREFIX).ok_or(TokenFormatError::Prefix)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenFormatError::Shape)?;
        if id.len() != 32 || secret.len() != 64 {
            return Err(TokenFormatError::Shape);
        }
        let id = decode_hex::<16>(id).ok_or(TokenFormatError::Shape)?;
        let secret = decode_hex::<32>(secret).ok_or(TokenFormatError::Shape)?;
        Ok(IssuedToken {
            token_id: Uuid::from_bytes(id),
            secret,
        })
    }

    /// The token's text, to show once.
    pub fn reveal(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}_{}",
            self.token_id.simple(),
            encode_hex(&self.secret)
        )
    }

    /// The SHA-256 hash of the secret, as stored.
    pub fn secret_hash(&self) -> Vec<u8> {
        Sha256::digest(self.secret).to_vec()
    }

    /// Whether the secret matches a stored hash (constant time).
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        let hash = self.secret_hash();
        hash.len() == stored_hash.len() && bool::from(hash.as_slice().ct_eq(stored_hash))
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 0x0f) as usize] as char);
    }
    text
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    // Lower case only: a token has exactly one spelling.
    let value = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = value(digits[2 * index])? << 4 | value(digits[2 * index + 1])?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_only_its_own_secret_matches() {
        let token = IssuedToken::generate().expect("randomness");
        let text = token.reveal();
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), TOKEN_PREFIX.len() + 32 + 1 + 64);
        let parsed = IssuedToken::parse(&text).expect("parses");
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        let other = IssuedToken::generate().expect("randomness");
        assert!(!other.matches(&token.secret_hash()));
        assert!(!token.matches(&[]));
        assert_ne!(other.token_id, token.token_id);
        assert!(!format!("{token:?}").contains(&text[40..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let text = IssuedToken::generate().expect("randomness").reveal();
        assert_eq!(IssuedToken::parse(&text[1..]), Err(TokenFormatError::Prefix));
        assert_eq!(
            IssuedToken::parse(&text[..text.len() - 1]),
            Err(TokenFormatError::Shape)
        );
        let mut bad = text.clone();
        bad.replace_range(10..11, "z");
        assert_eq!(IssuedToken::parse(&bad), Err(TokenFormatError::Shape));
        assert_eq!(IssuedToken::parse("lsd_"), Err(TokenFormatError::Shape));
        assert_eq!(IssuedToken::parse("lsd_é_é"), Err(TokenFormatError::Shape));
        assert_eq!(
            IssuedToken::parse(&text.to_uppercase().replacen("LSD_", "lsd_", 1)),
            Err(TokenFormatError::Shape)
        );
    }
}
