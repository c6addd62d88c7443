//! Network escapes: direct TCP and UDP (and DNS) to an outside host the test runs itself, and
//! the Docker host's own ports (the runner's API bound to 0.0.0.0). The only targets are this
//! host's listeners on its Docker bridge address; the control shows a plain container on the
//! bridge reaches them, so each check can fail.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

use super::support::{Plain, SERIAL, bridge_gateway, docker, exited, plain, sandboxed, show, text};

/// This host's listeners: TCP (as the runner's API would be) and UDP on 0.0.0.0, and a DNS
/// listener on the bridge address when port 53 is free there.
struct Outside {
    tcp: TcpListener,
    udp: UdpSocket,
    dns: Option<UdpSocket>,
}

impl Outside {
    async fn bind(gw: Ipv4Addr) -> Self {
        let dns = match UdpSocket::bind((gw, 53)).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("DNS listener not bound on {gw}:53 ({e}); the DNS part is skipped");
                None
            }
        };
        Self {
            tcp: TcpListener::bind("0.0.0.0:0").await.unwrap(),
            udp: UdpSocket::bind("0.0.0.0:0").await.unwrap(),
            dns,
        }
    }

    /// The agent's script: every way out it tries, then a marker line.
    fn script(&self, gw: Ipv4Addr) -> String {
        let tp = self.tcp.local_addr().unwrap().port();
        let up = self.udp.local_addr().unwrap().port();
        format!(
            "(echo paddock-tcp | nc -w 3 {gw} {tp}) & sleep 2; kill $! 2>/dev/null; \
             (echo paddock-lo | nc -w 3 127.0.0.1 {tp}) & sleep 2; kill $! 2>/dev/null; \
             tftp -g -r paddock-udp -l /tmp/udp {gw} {up} & sleep 2; kill $! 2>/dev/null; \
             nslookup paddock-dns.test {gw} & sleep 2; kill $! 2>/dev/null; \
             if [ -e /var/run/docker.sock ] || [ -e /run/docker.sock ]; then echo docker-sock; fi; \
             echo finished"
        )
    }

    /// What reached the listeners (each drained): (tcp bytes, udp datagram, dns datagram).
    async fn seen(&self) -> (Option<String>, Option<String>, Option<String>) {
        let tcp = match tokio::time::timeout(Duration::from_millis(500), self.tcp.accept()).await {
            Ok(Ok((mut c, _))) => {
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut buf)).await;
                Some(text(&buf))
            }
            _ => None,
        };
        let udp = datagram(&self.udp).await;
        let dns = match &self.dns {
            Some(s) => datagram(s).await,
            None => None,
        };
        (tcp, udp, dns)
    }
}

async fn datagram(s: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 1500];
    match tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(text(&buf[..n])),
        _ => None,
    }
}

#[tokio::test]
async fn direct_tcp_udp_dns_and_the_hosts_ports_are_unreachable() {
    let _g = SERIAL.lock().await;
    let Some(engine) = docker().await else { return };
    let gw = bridge_gateway(&engine).await;
    let outside = Outside::bind(gw).await;
    let script = outside.script(gw);

    let o = sandboxed(engine, "net", &["sh", "-c", &script]).await;
    let out = text(&o.stdout);
    assert_eq!(exited(&o), Some(0), "{}", show(&o));
    assert!(out.contains("finished"), "{}", show(&o));
    assert!(
        !out.contains("docker-sock"),
        "a Docker socket is visible: {out}"
    );
    assert_eq!(
        outside.seen().await,
        (None, None, None),
        "the sandbox reached the host"
    );

    // The control: a plain container on the bridge reaches every listener with the same script.
    let (code, all) = plain(Plain::Default, &script);
    assert_eq!(code, 0, "{all}");
    let (tcp, udp, dns) = outside.seen().await;
    assert_eq!(tcp.as_deref(), Some("paddock-tcp\n"), "control TCP: {all}");
    assert!(
        udp.is_some_and(|d| d.contains("paddock-udp")),
        "control UDP: {all}"
    );
    if outside.dns.is_some() {
        assert!(
            dns.is_some_and(|d| d.contains("paddock-dns")),
            "control DNS: {all}"
        );
    }
}
