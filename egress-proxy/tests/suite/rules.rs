//! Every deny rule, each next to the allowed neighbour that passes.

use super::support::Env;

#[tokio::test]
async fn read_public_passes_and_reaches_the_stand_in() {
    let env = Env::start().await;
    let p = env.up.port();
    let r = env.get(&format!("http://public.test:{p}/")).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.text(), "hello");
    let seen = env.up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].uri, "/", "origin-form upstream");
    assert_eq!(
        seen[0].header("host"),
        Some(format!("public.test:{p}").as_str())
    );
    // HEAD too.
    let r = env
        .send(&format!(
            "HEAD http://public.test:{p}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
        ))
        .await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn method_unknown_denied() {
    let env = Env::start().await;
    let p = env.up.port();
    for m in ["post", "Get", "TRACE", "PROPFIND", "BREW"] {
        let r = env
            .send(&format!(
                "{m} http://public.test:{p}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(r.status, 403, "{m}");
        assert_eq!(r.rule(), "method_unknown", "{m}");
        assert_eq!(r.json()["error"], "egress_denied");
        assert_eq!(r.json()["host"], "public.test");
    }
    assert_eq!(env.up.connection_count(), 0);
    env.stop().await;
}

#[tokio::test]
async fn writes_need_an_approved_host_and_https() {
    let env = Env::start().await;
    let p = env.up.port();
    let post = |host: &str| {
        format!(
            "POST http://{host}:{p}/echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
    };
    let r = env.send(&post("public.test")).await;
    assert_eq!((r.status, r.rule().as_str()), (403, "write_not_approved"));
    for m in ["PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = env
            .send(&format!(
                "{m} http://public.test:{p}/ HTTP/1.1\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(
            (r.status, r.rule().as_str()),
            (403, "write_not_approved"),
            "{m}"
        );
    }
    // Approved hosts (exact and wildcard) still need HTTPS: plain HTTP is refused.
    let r = env.send(&post("api.github.test")).await;
    assert_eq!((r.status, r.rule().as_str()), (403, "write_not_https"));
    let r = env.send(&post("x.anthropic.test")).await;
    assert_eq!((r.status, r.rule().as_str()), (403, "write_not_https"));
    // The apex of a wildcard pattern is not approved.
    env.dns.set("anthropic.test", &["127.0.0.2"]);
    let r = env.send(&post("anthropic.test")).await;
    assert_eq!((r.status, r.rule().as_str()), (403, "write_not_approved"));
    assert_eq!(
        env.up.connection_count(),
        0,
        "no denied write reached the upstream"
    );
    // Neighbour: a read of the same URL passes.
    let r = env.get(&format!("http://api.github.test:{p}/echo")).await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn a_percent_encoded_method_override_is_still_an_override() {
    let env = Env::start().await;
    let p = env.up.port();
    for q in [
        "_m%65thod=DELETE",
        "%5F%6D%65%74%68%6F%64=PUT",
        "a=1;_METH%4fD=post",
        "%255fmethod=DELETE",
        ".method=DELETE",
        "_method%5B%5D=PUT",
    ] {
        let r = env.get(&format!("http://public.test:{p}/?{q}")).await;
        assert_eq!(
            (r.status, r.rule().as_str()),
            (403, "write_not_approved"),
            "{q}"
        );
    }
    assert_eq!(env.up.connection_count(), 0);
    // The neighbours: keys that only look alike are plain parameters.
    for q in [
        "m%65thod=DELETE",
        "_m%65thodx=DELETE",
        "x=_m%65thod",
        "_method_=1",
    ] {
        let r = env.get(&format!("http://public.test:{p}/?{q}")).await;
        assert_eq!(r.status, 200, "{q}");
    }
    env.stop().await;
}

#[tokio::test]
async fn method_override_turns_a_read_into_a_write() {
    let env = Env::start().await;
    let p = env.up.port();
    for h in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "x-http-method-override",
    ] {
        let r = env
            .send(&format!(
                "GET http://public.test:{p}/ HTTP/1.1\r\n{h}: DELETE\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(
            (r.status, r.rule().as_str()),
            (403, "write_not_approved"),
            "{h}"
        );
    }
    for q in [
        "_method=DELETE",
        "a=1&_method=PUT",
        "_METHOD=put",
        "%5fmethod=post",
    ] {
        let r = env.get(&format!("http://public.test:{p}/?{q}")).await;
        assert_eq!(
            (r.status, r.rule().as_str()),
            (403, "write_not_approved"),
            "{q}"
        );
    }
    assert_eq!(env.up.connection_count(), 0);
    let r = env
        .get(&format!("http://public.test:{p}/?method=DELETE"))
        .await;
    assert_eq!(r.status, 200, "a parameter merely named like it is fine");
    env.stop().await;
}

#[tokio::test]
async fn port_not_allowed_is_refused_before_connect() {
    let env = Env::start().await;
    let r = env
        .get(&format!("http://public.test:{}/", env.other_port.port()))
        .await;
    assert_eq!((r.status, r.rule().as_str()), (403, "port_not_allowed"));
    let r = env
        .get(&format!("http://127.0.0.2:{}/", env.other_port.port()))
        .await;
    assert_eq!((r.status, r.rule().as_str()), (403, "port_not_allowed"));
    assert_eq!(env.other_port.connection_count(), 0);
    let r = env
        .get(&format!("http://public.test:{}/", env.up.port()))
        .await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn private_name_denied_before_connect() {
    let env = Env::start().await;
    let pp = env.private.port();
    for name in ["private.test", "mixed.test", "v6loop.test"] {
        let r = env.get(&format!("http://{name}:{pp}/")).await;
        assert_eq!(
            (r.status, r.rule().as_str()),
            (403, "denied_address"),
            "{name}"
        );
    }
    // mixed.test also has a good answer: one bad answer denies the whole request.
    let r = env
        .get(&format!("http://mixed.test:{}/", env.up.port()))
        .await;
    assert_eq!((r.status, r.rule().as_str()), (403, "denied_address"));
    assert_eq!(env.private.connection_count(), 0);
    assert_eq!(env.up.connection_count(), 0);
    env.stop().await;
}

#[tokio::test]
async fn literal_ip_spellings_of_a_private_address_are_denied() {
    let env = Env::start().await;
    let pp = env.private.port();
    for host in [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "0x7f.1",
        "127.1",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "[64:ff9b::7f00:1]",
        "127.0.0.1.",
    ] {
        let r = env.get(&format!("http://{host}:{pp}/")).await;
        assert_eq!(r.status, 403, "{host}: {}", String::from_utf8_lossy(&r.raw));
        assert_eq!(r.rule(), "denied_address", "{host}");
    }
    // Numeric-looking but invalid: denied, never resolved.
    let q = env.dns.queries.load(std::sync::atomic::Ordering::SeqCst);
    for host in ["1.2.3.4.5", "0x", "08.0.0.1", "127.0.0.256", "4294967296"] {
        let r = env.get(&format!("http://{host}:{pp}/")).await;
        assert_eq!(r.status, 403, "{host}");
        assert_eq!(r.rule(), "invalid_host", "{host}");
    }
    assert_eq!(env.dns.queries.load(std::sync::atomic::Ordering::SeqCst), q);
    assert_eq!(
        env.private.connection_count(),
        0,
        "nothing connected to the private listener"
    );
    // Neighbour: the public stand-in in odd spellings passes.
    let p = env.up.port();
    for host in [
        "127.0.0.2",
        "2130706434",
        "0x7f.0.0.2",
        "0177.0.0.2",
        "127.2",
    ] {
        let r = env.get(&format!("http://{host}:{p}/")).await;
        assert_eq!(r.status, 200, "{host}");
    }
    env.stop().await;
}

#[tokio::test]
async fn cloud_metadata_denied_by_name_and_in_every_spelling() {
    let env = Env::start().await;
    // Port 80 is allowed, so only the address rule stands between the request and the
    // metadata service; the deny happens before any connect.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://metadata.test/",
    ] {
        let r = env.get(url).await;
        assert_eq!(r.status, 403, "{url}");
        assert_eq!(r.rule(), "cloud_metadata", "{url}");
    }
    // Another link-local address is a plain denied address.
    let r = env.get("http://169.254.1.1/").await;
    assert_eq!((r.status, r.rule().as_str()), (403, "denied_address"));
    env.stop().await;
}

#[tokio::test]
async fn malformed_hosts_are_denied_and_echo_is_safe() {
    let env = Env::start().await;
    let p = env.up.port();
    let r = env.get(&format!("http://user@public.test:{p}/")).await;
    assert_eq!((r.status, r.rule().as_str()), (403, "invalid_host"));
    let r = env.get(&format!("http://pub%6cic.test:{p}/")).await;
    assert!(r.status == 403 || r.status == 400, "{}", r.status);
    let r = env.get(&format!("http://a..test:{p}/")).await;
    assert!(r.status == 403 || r.status == 400);
    let long = "a".repeat(300);
    let r = env.get(&format!("http://{long}.test:{p}/")).await;
    assert!(r.status == 403 || r.status == 400);
    if r.status == 403 {
        assert!(r.json()["host"].as_str().unwrap().len() <= 100);
    }
    assert_eq!(env.up.connection_count(), 0);
    // Neighbour: upper case and a trailing dot are normalised and pass.
    let r = env.get(&format!("http://PUBLIC.Test.:{p}/")).await;
    assert_eq!(r.status, 200);
    env.stop().await;
}

#[tokio::test]
async fn unknown_name_is_a_bad_gateway_not_a_connect() {
    let env = Env::start().await;
    let r = env
        .get(&format!("http://nowhere.test:{}/", env.up.port()))
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["reason"], "no_address");
    env.stop().await;
}

#[tokio::test]
async fn dns_rebinding_never_reaches_the_private_address() {
    let env = Env::start().await;
    let p = env.up.port();
    // A private listener on the same port as the stand-in: the only thing between the
    // second answer and it is the validation of that answer.
    let private_same_port = super::support::Upstream::start_at("127.0.0.1", p).await;
    let r = env.get(&format!("http://rebind.test:{p}/")).await;
    assert_eq!(r.status, 200, "first answer is the public stand-in");
    let r = env.get(&format!("http://rebind.test:{p}/")).await;
    assert_eq!(
        (r.status, r.rule().as_str()),
        (403, "denied_address"),
        "second answer is private"
    );
    assert_eq!(env.up.connection_count(), 1);
    assert_eq!(private_same_port.connection_count(), 0);
    env.stop().await;
}

#[tokio::test]
async fn redirects_are_passed_back_never_followed() {
    let env = Env::start().await;
    let r = env
        .get(&format!("http://public.test:{}/redirect", env.up.port()))
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://private.test/"));
    assert_eq!(env.up.seen().len(), 1);
    assert_eq!(env.private.connection_count(), 0);
    env.stop().await;
}
