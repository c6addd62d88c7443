//! The loopback relay joins the agent's TCP connection to the run's proxy Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

use super::support::{Sandbox, bare, landlock_or_skip};

#[test]
fn relay_forwards_bytes_to_the_proxy_socket() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let server = UnixListener::bind(&sb.profile.relay.proxy_socket).unwrap();
    let proxy = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"proxy got: ").unwrap();
        s.write_all(&got).unwrap();
    });
    let addr = sb.profile.relay.listen.to_string();
    let out = sb.attempt("relay", Some(&addr));
    assert!(out.succeeded(), "{out:?}");
    assert!(
        out.stdout
            .contains("reply=\"proxy got: paddock-redteam ping\""),
        "{out:?}"
    );
    proxy.join().unwrap();
    // Without paddock-init nothing listens there.
    assert!(!bare("relay", Some(&addr)).succeeded());
}

#[test]
fn relay_without_a_proxy_socket_is_a_dead_end() {
    if !landlock_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let addr = sb.profile.relay.listen.to_string();
    let out = sb.attempt("relay", Some(&addr));
    assert_eq!(out.code, 1, "{out:?}");
}
