//! A member's own way to the broker that the rebalance bench can cut, as
//! a crash would.
//!
//! [`Link`] listens on 127.0.0.1 at a free port and forwards every
//! connection it accepts to the broker, byte for byte (TLS passes through
//! untouched). [`Link::cut`] closes the listener and every forwarded
//! connection at once, as the kernel does for a process killed with
//! SIGKILL: the broker sees its connections close, and nothing more
//! arrives from the member (no leave, no commit, no heartbeat), so its
//! partitions move only when its session times out. A client behind a cut
//! link that tries to reconnect is refused.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A forwarder from a private local port to the broker.
pub struct Link {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts forwarding to `broker` (`host:port`, resolved now).
    pub async fn open(broker: &str) -> Result<Link> {
        let target = tokio::net::lookup_host(broker)
            .await
            .with_context(|| format!("resolving the broker address {broker:?}"))?
            .next()
            .with_context(|| format!("the broker address {broker:?} resolves to nothing"))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the rebalance bench's member link")?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(accept(listener, target, cut_rx));
        Ok(Link { addr, cut, task })
    }

    /// The address members connect to instead of the broker's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every connection through it, and waits
    /// until they are closed.
    pub async fn cut(self) {
        self.cut.send_replace(true);
        let _ = self.task.await;
    }
}

/// Resolves once the link is cut (or its [`Link`] is gone).
async fn cut(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|cut| *cut).await;
}

/// Accepts and forwards until cut; then closes every forwarded connection.
async fn accept(listener: TcpListener, target: SocketAddr, mut cut_rx: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = cut(&mut cut_rx) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((mut member, _)) = accepted else { continue };
                conns.spawn(async move {
                    let Ok(mut broker) = TcpStream::connect(target).await else { return };
                    let _ = member.set_nodelay(true);
                    let _ = broker.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut member, &mut broker).await;
                });
            }
        }
    }
    drop(listener);
    // Aborting a forwarding task drops both of its sockets: the broker
    // sees its connection close, as after a crash.
    conns.shutdown().await;
}
