//! The client subcommands' command lines (gate, get, apply): how to reach the
//! server, which resource, what to print.
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

pub const GATE_ABOUT: &str =
    "Calls ContactsService/CheckOnboardingGate and exits with the answer, \
for CI pipelines. Retries an unreachable or UNAVAILABLE server with exponential backoff and \
jitter until --timeout.

Exit codes: 0 gate open; 1 gate closed; 2 usage error or INVALID_ARGUMENT (bad flags, unknown \
integration type); 3 server unreachable or UNAVAILABLE within --timeout; 4 caller refused \
(UNAUTHENTICATED, PERMISSION_DENIED); 5 any other error.

The bearer token is read from --token-file, or from the environment variable named by \
--token-env (PARTNER_CONTACTS_TOKEN by default); never from a flag.";

pub const APPLY_ABOUT: &str = "Saves contact information from a YAML or TOML file with the field \
names of the proto (partnerportal.contacts.v1.ContactInfo). The file is the whole resource: \
every field in it replaces the stored one, and a field absent from it is cleared (update mask \
`*`). create_time and update_time are ignored.

apply reads the stored contact info, asks the server to validate the file (validate_only) and \
prints the changes field by field. When nothing changes it saves nothing. Otherwise it saves \
with the file's etag (or --etag), or with the etag it read when neither is given, so a change \
made by someone else since is refused (exit 6) and never overwritten. The request_id is derived \
from the request's content, so a retried or repeated apply saves at most once.

Exit codes: 0 saved, or nothing to change, or --dry-run passed; 2 usage error, unreadable file \
or INVALID_ARGUMENT (the problems are printed with the file's field paths); 3 server \
unreachable or UNAVAILABLE within --timeout; 4 caller refused; 5 any other error (e.g. \
FAILED_PRECONDITION: an alert contact who is not a portal user); 6 conflict: the stored \
contact info changed since the etag.";

/// How a client subcommand reaches the server and proves who it is.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Server to call: http://HOST:PORT (plaintext) or https://HOST:PORT (TLS).
    #[arg(
        long,
        env = "PARTNER_CONTACTS_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,

    /// PEM file of the CA that signed the server's certificate (https only).
    /// Without it, https trusts the public web PKI (webpki roots).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// PEM client certificate for mutual TLS (https only; with --client-key).
    #[arg(long, value_name = "PATH", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, value_name = "PATH", requires = "client_cert")]
    pub client_key: Option<PathBuf>,

    /// File holding the bearer token (a JWT), sent as `authorization: Bearer
    /// ...`. Surrounding whitespace is ignored. Takes precedence over
    /// --token-env.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Environment variable holding the bearer token, when --token-file is
    /// not given. No token is sent when it is unset (a development server
    /// needs none).
    #[arg(long, value_name = "NAME", default_value = "PARTNER_CONTACTS_TOKEN")]
    pub token_env: String,

    /// Seconds the whole command may take, retries of an unreachable or
    /// UNAVAILABLE server included (e.g. 30 or 2.5).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s
        .parse()
        .map_err(|_| "expected a number of seconds, e.g. 30 or 2.5".to_owned())?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err("must be more than 0".to_owned());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// Which contact info a client subcommand is about.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct ResourceArgs {
    /// Resource name: partners/P/environments/E/contactInfo.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["partner", "environment"])]
    pub name: Option<String>,

    /// Partner id (with --environment), instead of --name.
    #[arg(long, value_name = "PARTNER", requires = "environment")]
    pub partner: Option<String>,

    /// Environment (with --partner), instead of --name.
    #[arg(long, value_name = "ENV", value_parser = ["sandbox", "production"], requires = "partner")]
    pub environment: Option<String>,
}

impl ResourceArgs {
    /// The resource name the flags denote.
    pub fn resource_name(&self) -> String {
        match (&self.name, &self.partner, &self.environment) {
            (Some(name), _, _) => name.clone(),
            (None, Some(partner), Some(env)) => {
                format!("partners/{partner}/environments/{env}/contactInfo")
            }
            // clap's group and `requires` rule the other combinations out;
            // an empty name is refused by the server as INVALID_ARGUMENT.
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateOutput {
    /// One line for the verdict, one per finding (field: reason: message).
    Text,
    /// One JSON object on stdout (see the README for its shape).
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub resource: ResourceArgs,

    /// Integration type whose requirements apply, e.g. reservations-e2e.
    /// Default: the server's default type. An unknown type exits 2.
    #[arg(long, value_name = "TYPE")]
    pub integration_type: Option<String>,

    /// Output format on stdout; errors go to stderr as text, or to stdout as
    /// {"error": ...} with json.
    #[arg(long, value_enum, default_value_t = GateOutput::Text)]
    pub output: GateOutput,
}

/// A contact info file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Yaml,
    Toml,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub resource: ResourceArgs,

    /// Format written on stdout.
    #[arg(long, value_enum, default_value_t = FileFormat::Yaml)]
    pub output: FileFormat,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Contact info file: .yaml, .yml or .toml, or `-` for stdin.
    #[arg(short = 'f', long, value_name = "PATH")]
    pub file: PathBuf,

    /// The file's format. Default: from its extension (YAML for stdin).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,

    /// Save only if the stored etag is this one; overrides the file's etag.
    #[arg(long, value_name = "ETAG")]
    pub etag: Option<String>,

    /// Validate and show the changes (the server checks with validate_only),
    /// save nothing.
    #[arg(long)]
    pub dry_run: bool,
}
