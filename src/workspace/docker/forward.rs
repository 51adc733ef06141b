//! `sandcrab forward LISTEN=TARGET...`: a plain TCP forwarder, the one job of the bridge
//! container a remote engine gets ([`super::bridge`]). Each pair listens on `LISTEN` and pipes
//! every connection to `TARGET` both ways until either side closes. It reads nothing and
//! holds no secret: the relay's token and the session key pass through it as bytes.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// One `LISTEN=TARGET` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub listen: SocketAddr,
    /// `host:port`; a name is resolved on each connection (the engine's DNS on user networks).
    pub target: String,
}

impl Forward {
    /// Parses `0.0.0.0:8000=172.18.0.2:8000`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((listen, target)) = text.split_once('=') else {
            bail!("forward {text}: use LISTEN=TARGET, e.g. 0.0.0.0:8000=10.0.0.2:8000");
        };
        let listen = listen
            .parse()
            .with_context(|| format!("forward {text}: LISTEN must be IP:PORT"))?;
        let has_port = target
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            bail!("forward {text}: TARGET must be HOST:PORT");
        }
        Ok(Forward {
            listen,
            target: target.to_string(),
        })
    }
}

/// Binds every pair, then forwards until the process ends.
pub async fn run(forwards: Vec<Forward>) -> Result<()> {
    if forwards.is_empty() {
        bail!("forward: give at least one LISTEN=TARGET pair");
    }
    let mut tasks = Vec::new();
    for forward in forwards {
        let listener = TcpListener::bind(forward.listen)
            .await
            .with_context(|| format!("forward: cannot listen on {}", forward.listen))?;
        eprintln!("forwarding {} to {}", forward.listen, forward.target);
        tasks.push(tokio::spawn(accept_loop(listener, forward.target)));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, target: String) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = pipe(inbound, &target).await {
                eprintln!("forward to {target}: {e}");
            }
        });
    }
}

async fn pipe(mut inbound: TcpStream, target: &str) -> std::io::Result<()> {
    let mut outbound = TcpStream::connect(target).await?;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn pairs_parse_and_bad_ones_say_why() {
        let f = Forward::parse("0.0.0.0:8000=10.1.2.3:8000").unwrap();
        assert_eq!(f.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(f.target, "10.1.2.3:8000");
        assert_eq!(
            Forward::parse("127.0.0.1:1=sandbox:80").unwrap().target,
            "sandbox:80"
        );
        for bad in [
            "0.0.0.0:8000",
            "x=1.2.3.4:5",
            "0.0.0.0:1=host",
            "0.0.0.0:1=:80",
        ] {
            assert!(Forward::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn bytes_go_both_ways() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(accept_loop(front, target));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"HELLO");
    }
}
