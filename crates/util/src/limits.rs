//! Every limit of the fabric in one place, units last in the names.

use std::time::Duration;

/// Largest gRPC message a node accepts or sends. Enrollment and node lists
/// stay far below this; anything larger is refused with `ResourceExhausted`.
pub const RPC_MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// A TLS client must finish its handshake within this time or the connection
/// is dropped, so that a silent or garbage-sending peer cannot hold a slot.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; further connections wait in the kernel
/// backlog. Bounds the memory garbage senders can make us hold.
pub const TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 256;

/// After refusing a TLS handshake, how long and how much we keep reading so
/// the client receives our alert instead of a reset.
pub const LINGER_ON_REFUSAL: Duration = Duration::from_secs(1);
pub const LINGER_DRAIN_BYTES_MAX: usize = 64 * 1024;

/// Connections past the handshake waiting for the RPC server to take them.
pub const ACCEPTED_CONNECTIONS_QUEUE_MAX: usize = 128;

/// Timeout of one RPC between nodes or from the CLI.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to establish a TCP+TLS connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest and shortest lifetime an administrator may give a join token.
pub const JOIN_TOKEN_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const JOIN_TOKEN_TTL_MIN: Duration = Duration::from_secs(1);

/// Bounds of the node certificate lifetime a site may configure.
pub const NODE_CERT_LIFETIME_MIN: Duration = Duration::from_secs(10);
pub const NODE_CERT_LIFETIME_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Pings one `xos node ping` / bench request may ask a node to make.
pub const PROBE_COUNT_MAX: u32 = 100_000;
pub const PROBE_PAYLOAD_BYTES_MAX: u32 = 64 * 1024;

/// Entries kept in the store's command log once applied.
pub const STORE_LOG_RETAINED_ENTRIES: u64 = 10_000;

/// Certificates start this much before they are issued, so that a peer whose
/// clock runs slightly behind still accepts them. Renewal subtracts it again
/// to find the real issue time.
pub const CERT_CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(120);
