//! Counters of each pipeline element, defined in one place per element so that logs, status
//! output and tests agree. Each counter is documented on its field below.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: AtomicU64,)*
        }

        impl $name {
            /// (name, value) of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Relaxed)),)*]
            }

            /// Logs every counter on one line (at exit of the element).
            pub fn log(&self, element: &str) {
                let line = self
                    .snapshot()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::info!("{element} counters: {line}");
            }
        }
    };
}

counters! {
    /// Forwarder counters.
    ForwarderStats {
        /// TCP connections accepted since start.
        connections_accepted,
        /// TCP connections open now.
        connections_open,
        /// Bytes read from TCP connections and UDP datagrams.
        bytes_received,
        /// UDP datagrams received.
        udp_datagrams,
        /// Messages framed from the input (including truncated ones).
        messages_received,
        /// Messages cut to the maximum message size.
        truncated,
        /// Malformed octet counts (the connection then falls back to LF framing).
        malformed_frames,
        /// Octet-counted frames cut short by the connection closing (emitted as they were).
        incomplete,
        /// Messages published to at least one subscribed receiver.
        published,
        /// Messages whose topic no receiver subscribed to (dropped by routing).
        unrouted,
        /// Messages dropped at shutdown because no receiver was left to take them.
        dropped_at_shutdown,
        /// Partial messages dropped when a stop closed a connection whose sender was still in
        /// the middle of a message (after the drain time, or a pause of the sender).
        cut_at_stop,
    }
}

counters! {
    /// Receiver counters.
    ReceiverStats {
        /// Messages received from the forwarder(s).
        received,
        /// Messages pushed to workers.
        pushed,
        /// Publisher messages that were not [topic, message] (single frame: pushed whole;
        /// extra frames: ignored).
        malformed,
    }
}

counters! {
    /// Worker counters.
    WorkerStats {
        /// Messages received from the backend.
        received,
        /// Messages handed to the program, written out, or counted (null).
        processed,
        /// Messages lost because the program or output failed while holding them.
        failed,
    }
}
