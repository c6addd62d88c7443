//! The whole egress chain with real parts: an agent in a real sandbox → paddock-init's relay →
//! its run's socket → the real proxy container → a fake upstream host (a container this test
//! creates on the egress network, serving HTTPS and answering DNS for its own names). Proves
//! that intercepted hosts are served with the run's CA, that tunnelled hosts keep their real
//! certificate and still verify through the run's trust bundle, and that curl and Python, the
//! clients agents use, work with the variables the sandbox sets, and that the method-aware policy
//! still judges what is inside an intercepted connection.
//! Needs Docker, `paddock/agent:latest` and `paddock/egress:latest`; with `CI` set, a missing
//! one is a failure, not a skip.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions,
};
use futures_util::StreamExt;
use paddock::sandbox::proxy::{EGRESS_NETWORK, EgressContainer, EgressSettings};
use paddock::sandbox::{DockerEngine, Launcher, RunSpec, RunStatus};
use paddock_policy::control::RegisterRun;
use paddock_policy::sandbox::SandboxProfile;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::sandbox_run::{AGENT, docker};

const INTERCEPTED: &str = "upstream.paddock.test";
const TUNNELLED: &str = "tunnel.paddock.test";
const PORT: u16 = 8443;
const DNS_PORT: u16 = 5353;

/// The fake upstream host: HTTPS on 8443 (answers `hello from <Host>`), and a DNS server on UDP
/// 5353 that knows only its own two names (A → its own address, AAAA → none, else NXDOMAIN).
const FAKE_HOST: &str = r#"
import http.server, socket, ssl, struct, threading
ip = socket.gethostbyname(socket.gethostname())
NAMES = {b"upstream.paddock.test", b"tunnel.paddock.test"}

def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 5353))
    while True:
        q, peer = s.recvfrom(1500)
        if len(q) < 17:
            continue
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]])
            i += 1 + q[i]
        if i + 5 > len(q):
            continue
        name = b".".join(labels).lower()
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        known = name in NAMES
        answer = b""
        if known and qtype == 1:
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(ip)
        flags = 0x8180 | (0 if known else 3)
        header = q[:2] + struct.pack(">HHHHH", flags, 1, 1 if answer else 0, 0, 0)
        s.sendto(header + q[12:i + 5] + answer, peer)

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + self.headers.get("Host", "?")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

threading.Thread(target=dns, daemon=True).start()
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), Hello)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/fake/server.pem", "/fake/server.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", ip, flush=True)
srv.serve_forever()
"#;

/// What the agent runs: each client's answer on its own line, errors included.
const AGENT_SCRIPT: &str = r#"
get() { curl -sS --max-time 30 "$@" 2>&1 | tr '\n' ' '; echo; }
echo "intercepted-bundle: $(get https://upstream.paddock.test:8443/a)"
echo "intercepted-run-ca: $(get --cacert /paddock/ca.pem https://upstream.paddock.test:8443/b)"
echo "intercepted-post: $(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -X POST --data x https://upstream.paddock.test:8443/w 2>&1)"
echo "tunnelled-bundle: $(get https://tunnel.paddock.test:8443/c)"
echo "tunnelled-run-ca: $(get --cacert /paddock/ca.pem https://tunnel.paddock.test:8443/d)"
python3 - <<'EOF'
import urllib.request
for host in ("upstream.paddock.test", "tunnel.paddock.test"):
    try:
        body = urllib.request.urlopen(f"https://{host}:8443/py", timeout=30).read().decode()
        print(f"python {host}: {body}")
    except Exception as e:
        print(f"python {host}: failed {e}")
EOF
"#;

/// The upstream's CA (PEM) and its leaf for both names, written with the server script into
/// `dir` (readable by the fake host's non-root user).
fn fake_host_files(dir: &Path) -> PathBuf {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "Paddock chain test upstream CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![INTERCEPTED.to_owned(), TUNNELLED.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca = dir.join("upstream-ca.pem");
    for (name, text) in [
        ("upstream-ca.pem", ca_pem),
        ("server.pem", leaf.pem()),
        ("server.key", leaf_key.serialize_pem()),
        ("server.py", FAKE_HOST.to_owned()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    ca
}

async fn remove(engine: &DockerEngine, name: &str) {
    let opts = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = engine.client().remove_container(name, Some(opts)).await;
}

/// Starts the fake host on the egress network; answers its address once it serves.
async fn start_fake_host(engine: &DockerEngine, name: &str, dir: &Path) -> String {
    let d = engine.client();
    let body = ContainerCreateBody {
        image: Some(AGENT.to_owned()),
        entrypoint: Some(vec!["python3".into(), "/fake/server.py".into()]),
        user: Some("10001:10001".into()),
        labels: Some(HashMap::from([(
            "org.paddock.test".to_owned(),
            "egress-chain".to_owned(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(EGRESS_NETWORK.into()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            mounts: Some(vec![Mount {
                target: Some("/fake".into()),
                source: Some(dir.to_str().unwrap().to_owned()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new().name(name).build();
    d.create_container(Some(opts), body).await.unwrap();
    d.start_container(name, None::<StartContainerOptions>)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let opts = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut logs = d.logs(name, Some(opts));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&chunk.to_string());
        }
        if text.contains("ready") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake host did not start: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = d
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    info.network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get(EGRESS_NETWORK).cloned())
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .expect("the fake host's address on the egress network")
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` line in {out}"))
}

#[tokio::test]
async fn intercepted_and_tunnelled_https_work_end_to_end_with_the_runs_trust() {
    let Some(engine) = docker().await else { return };
    let pid = std::process::id();
    let files = tempfile::Builder::new()
        .prefix("paddock-chain")
        .tempdir()
        .unwrap();
    let upstream_ca = fake_host_files(files.path());
    let state = tempfile::Builder::new()
        .prefix("paddock-chain-egress")
        .tempdir()
        .unwrap();
    let mut settings = EgressSettings {
        state_dir: state.path().to_path_buf(),
        extra_ca_bundle: Some(upstream_ca),
        ..Default::default()
    };
    // The egress network exists once a proxy is up; the fake host joins it, then the proxy is
    // pointed at the fake host's DNS (a changed config recreates it).
    let proxy_name = settings.container_name();
    let host_name = format!("paddock-chain-upstream-{pid}");
    remove(&engine, &host_name).await;
    EgressContainer::ensure(&engine, &settings).await.unwrap();
    let ip = start_fake_host(&engine, &host_name, files.path()).await;
    settings.nameservers = vec![format!("{ip}:{DNS_PORT}").parse().unwrap()];
    let egress = EgressContainer::ensure(&engine, &settings).await.unwrap();

    let run = format!("chain-{pid}");
    let policy = paddock_policy::PolicyConfig {
        tunnel_hosts: vec![TUNNELLED.to_owned()],
        tunnel_ports: vec![PORT],
        allowed_ports: vec![PORT],
        // The fake host is on a private bridge address: exempt that one address, nothing else.
        allow_ranges: vec![format!("{ip}/32")],
        ..Default::default()
    };
    let reg = egress
        .register(RegisterRun {
            run: run.clone(),
            policy,
            credentials: Vec::new(),
            budget: paddock_policy::BudgetConfig::default(),
            ttl_secs: 300,
        })
        .await
        .unwrap();
    std::fs::write(reg.run_dir.join("task.md"), "# task\n").unwrap();
    // The bundle: the run's CA first, then the roots (here, the upstream's CA among them).
    let bundle = std::fs::read_to_string(reg.run_dir.join("ca-bundle.pem")).unwrap();
    assert!(bundle.starts_with(reg.ca_pem.trim_end()), "run CA first");
    let launcher = Launcher::new(engine.clone(), SandboxProfile::default())
        .unwrap()
        .with_owner(&format!("chain-test-{pid}"))
        .unwrap();
    let mut spec = RunSpec::new(
        format!("chain-{pid}"),
        AGENT,
        vec!["sh".into(), "-c".into(), AGENT_SCRIPT.into()],
        reg.run_dir.clone(),
    );
    spec.ca_file = true;
    spec.timeout = Duration::from_secs(180);
    let outcome = launcher.run(spec).await;
    let totals = egress.revoke(&run).await;
    remove(&engine, &host_name).await;
    remove(&engine, &proxy_name).await;
    let outcome = outcome.unwrap();
    let out = String::from_utf8_lossy(&outcome.stdout).into_owned();
    let err = String::from_utf8_lossy(&outcome.stderr).into_owned();
    assert_eq!(outcome.status, RunStatus::Exited(0), "{out}\n{err}");

    // Intercepted: served through the proxy with the run's CA, which alone suffices.
    let hello = format!("hello from {INTERCEPTED}:{PORT}");
    assert!(line(&out, "intercepted-bundle: ").contains(&hello), "{out}");
    assert!(line(&out, "intercepted-run-ca: ").contains(&hello), "{out}");
    // Inside the interception the method-aware policy holds: a write to an unapproved host is
    // refused by the proxy (the fake host would answer 501 to a POST).
    assert_eq!(line(&out, "intercepted-post: ").trim(), "403", "{out}");
    // Tunnelled: the real certificate reaches the client. It verifies through the bundle, and
    // the run's CA alone does not (so the proxy did not intercept it).
    let hello = format!("hello from {TUNNELLED}:{PORT}");
    assert!(line(&out, "tunnelled-bundle: ").contains(&hello), "{out}");
    let refused = line(&out, "tunnelled-run-ca: ");
    assert!(
        !refused.contains("hello") && refused.contains("certificate"),
        "{out}"
    );
    // Python reads SSL_CERT_FILE: both kinds work.
    assert!(
        line(&out, &format!("python {INTERCEPTED}: ")).starts_with("hello from"),
        "{out}"
    );
    assert!(
        line(&out, &format!("python {TUNNELLED}: ")).starts_with("hello from"),
        "{out}"
    );
    let totals = totals.unwrap();
    assert!(totals.requests >= 4, "{totals:?}");
}
