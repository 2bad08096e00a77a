//! Where the client finds the server and its token: a `--server` flag (or `LICENSD_SERVER`), the
//! `LICENSD_TOKEN` variable, and the optional file `~/.config/licensd/cli.toml` with `server` and
//! `token` keys. Explicit settings win over the file; without anything, the server is
//! `http://127.0.0.1:8080` and no token is sent.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The address used when nothing else names one: `licensd serve`'s default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The variable naming another configuration file than the default one.
pub const CONFIG_PATH_VARIABLE: &str = "LICENSD_CLI_CONFIG";

/// The variable holding the token.
pub const TOKEN_VARIABLE: &str = "LICENSD_TOKEN";

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists (or was named explicitly) but cannot be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML with the keys `server` and `token`.
    #[error("the configuration file {} is not valid (expected the TOML keys `server` and `token`): {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// The contents of `cli.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The server's address, such as `https://licensd.example.com`.
    #[serde(default)]
    pub server: Option<String>,
    /// The token sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
}

impl ConfigFile {
    /// Parses the text of a configuration file (`path` is only for the error message).
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a configuration file; `Ok(None)` when it does not exist and `required` is false.
    pub fn read(path: &Path, required: bool) -> Result<Option<ConfigFile>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ConfigFile::parse(&text, path).map(Some),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Where the configuration file is: `$LICENSD_CLI_CONFIG` if set (then it must exist), else
/// `$XDG_CONFIG_HOME/licensd/cli.toml`, else `$HOME/.config/licensd/cli.toml`. The flag says
/// whether the path was named explicitly.
pub fn config_file_path() -> Option<(PathBuf, bool)> {
    if let Some(path) = non_empty_variable(CONFIG_PATH_VARIABLE) {
        return Some((PathBuf::from(path), true));
    }
    let config_home = non_empty_variable("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty_variable("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some((config_home.join("licensd").join("cli.toml"), false))
}

fn non_empty_variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// Where to send requests and with which token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server's base address (`http://host:port`, optionally with a path prefix).
    pub server: String,
    /// Sent as `Authorization: Bearer <token>` when present.
    pub token: Option<String>,
}

impl ClientConfig {
    /// Combines the sources, most specific first: the server from `server_option` (the flag or
    /// `LICENSD_SERVER`), else the file, else [`DEFAULT_SERVER`]; the token from `token_variable`
    /// (`LICENSD_TOKEN`), else the file. Empty values count as absent.
    pub fn combine(
        server_option: Option<String>,
        token_variable: Option<String>,
        file: Option<ConfigFile>,
    ) -> ClientConfig {
        let file = file.unwrap_or_default();
        let present = |value: Option<String>| value.filter(|text| !text.trim().is_empty());
        ClientConfig {
            server: present(server_option)
                .or_else(|| present(file.server))
                .unwrap_or_else(|| DEFAULT_SERVER.to_string()),
            token: present(token_variable).or_else(|| present(file.token)),
        }
    }

    /// The configuration of this process: `server_option` (the `--server` flag), the
    /// `LICENSD_TOKEN` variable and the configuration file (see [`config_file_path`]).
    pub fn from_environment(server_option: Option<String>) -> Result<ClientConfig, ConfigError> {
        let file = match config_file_path() {
            Some((path, required)) => ConfigFile::read(&path, required)?,
            None => None,
        };
        Ok(ClientConfig::combine(
            server_option,
            std::env::var(TOKEN_VARIABLE).ok(),
            file,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(server: Option<&str>, token: Option<&str>) -> Option<ConfigFile> {
        Some(ConfigFile {
            server: server.map(str::to_string),
            token: token.map(str::to_string),
        })
    }

    #[test]
    fn explicit_settings_win_over_the_file_and_the_file_over_the_defaults() {
        let config = ClientConfig::combine(
            Some("http://flag:1".to_string()),
            Some("from-variable".to_string()),
            file(Some("http://file:2"), Some("from-file")),
        );
        assert_eq!(config.server, "http://flag:1");
        assert_eq!(config.token.as_deref(), Some("from-variable"));
        let config = ClientConfig::combine(None, None, file(Some("http://file:2"), Some("from-file")));
        assert_eq!(config.server, "http://file:2");
        assert_eq!(config.token.as_deref(), Some("from-file"));
        let config = ClientConfig::combine(None, Some(String::new()), None);
        assert_eq!(config.server, DEFAULT_SERVER);
        assert_eq!(config.token, None);
    }

    #[test]
    fn the_file_has_two_keys_and_refuses_others() {
        let path = Path::new("cli.toml");
        let parsed = ConfigFile::parse("server = \"http://h:1\"\ntoken = \"t\"\n", path).expect("valid file");
        assert_eq!(parsed, file(Some("http://h:1"), Some("t")).unwrap_or_default());
        let error = ConfigFile::parse("sever = \"http://h:1\"\n", path).expect_err("a typo");
        assert!(error.to_string().contains("cli.toml"), "{error}");
        assert!(error.to_string().contains("sever"), "{error}");
    }

    #[test]
    fn a_missing_default_file_is_no_configuration_and_a_missing_named_file_is_an_error() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("cli.toml");
        assert_eq!(ConfigFile::read(&path, false).expect("absent is fine"), None);
        let error = ConfigFile::read(&path, true).expect_err("named explicitly");
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        std::fs::write(&path, "token = \"secret\"\n").expect("write");
        let read = ConfigFile::read(&path, false).expect("readable");
        assert_eq!(read.and_then(|file| file.token).as_deref(), Some("secret"));
    }
}
