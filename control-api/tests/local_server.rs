//! The real `control-api serve` binary over real HTTP: same handler, dry run, logs without secrets.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_handler_and_dispatches_to_github() {
    let github = github_accepting().await;
    let uri = github.uri();
    let server = LocalServer::start(&[
        ("CONTROL_API_TOKEN", CONTROL_TOKEN),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("GITHUB_API_URL", &uri),
    ]);
    assert!(
        server.banner[0].contains("dispatch: GitHub"),
        "{:?}",
        server.banner
    );
    assert!(
        !server.banner.join("\n").contains(CONTROL_TOKEN),
        "a configured token is never printed"
    );
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let (status, body) = tokio::task::block_in_place(|| {
        server.post(
            &[("authorization", &bearer)],
            r#"{"action":"deploy","target":"clawdinator-2","caller":"human:ops"}"#,
        )
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "deploy queued for clawdinator-2");
    let (status, body) = tokio::task::block_in_place(|| {
        server.post(
            &[("x-clawdinator-token", CONTROL_TOKEN)],
            r#"{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-2"}"#,
        )
    });
    assert_eq!((status, body["error"].as_str()), (403, Some("self_deploy")));
    let sent = received(&github).await;
    assert_eq!(sent.len(), 1, "the refused request made no call");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_machine_generates_a_token_and_dry_runs() {
    let server = LocalServer::start(&[]);
    let banner = server.banner.join("\n");
    assert!(
        banner.contains("dispatch: dry run (GITHUB_TOKEN not set)"),
        "{banner}"
    );
    let token = server
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("export CONTROL_API_TOKEN="))
        .expect("generated token in banner")
        .to_owned();
    assert!(token.len() >= 32, "{token}");
    let bearer = format!("Bearer {token}");
    let (status, body) = tokio::task::block_in_place(|| {
        server.post(
            &[("authorization", &bearer)],
            r#"{"action":"deploy","target":"all"}"#,
        )
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["dispatch"],
        json!({
            "dry_run": true,
            "repo": "openclaw/clawdinators",
            "workflow": "fleet-deploy.yml",
            "ref": "main",
            "inputs": {"target": "all", "ami_override": "", "request_id": body["request_id"], "caller": "human:shared-token", "revision": null, "mode": "apply"}
        })
    );
    assert_eq!(
        body["revision"],
        serde_json::Value::Null,
        "a dry run resolves nothing"
    );
    let (status, _) =
        tokio::task::block_in_place(|| server.post(&[("authorization", "Bearer guess")], "{}"));
    assert_eq!(status, 401);
    let (out, err) = server.stop();
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "the generated token is printed once, in the banner only"
    );
}

/// Sends raw HTTP/1.1 and returns the status line and body of the answer.
fn raw_http(url: &str, head: &str, body: &[u8]) -> (String, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before the body is sent; that is the point.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_over_real_http_without_buffering_them() {
    let server = LocalServer::start(&[("CONTROL_API_TOKEN", CONTROL_TOKEN)]);
    // Declared 10 MB: refused from the headers alone, the body is never read.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CONTROL_TOKEN}\r\nContent-Length: 10485760\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw_http(&server.url, &head, b"");
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(body.contains("\"payload_too_large\""), "{body}");
    // Chunked, no length: read up to the limit, then refused.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CONTROL_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunk = "x".repeat(20 * 1024);
    let chunked = format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let (status, _) = raw_http(&server.url, &head, chunked.as_bytes());
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // Exactly at the limit is still read (and then judged on its content).
    let body = format!(
        r#"{{"action":"deploy","target":"nope-1","pad":"{}"}}"#,
        "x".repeat(16 * 1024 - 46)
    );
    assert_eq!(body.len(), 16 * 1024);
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let (status, _) =
        tokio::task::block_in_place(|| server.post(&[("authorization", &bearer)], &body));
    assert_eq!(status, 404);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_carry_an_audit_line_per_request_and_never_a_secret() {
    let github = github_accepting().await;
    let uri = github.uri();
    let server = LocalServer::start(&[
        ("CONTROL_API_TOKEN", CONTROL_TOKEN),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("GITHUB_API_URL", &uri),
        ("RUST_LOG", "trace"),
    ]);
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let body_with_token = format!(
        r#"{{"action":"deploy","target":"clawdinator-1","control_token":"{CONTROL_TOKEN}"}}"#
    );
    tokio::task::block_in_place(|| {
        server.post(&[("authorization", &bearer)], &body_with_token);
        server.post(
            &[("authorization", "Bearer wrong-token-value")],
            &body_with_token,
        );
        server.post(
            &[("authorization", &bearer)],
            r#"{"action":"deploy","target":"all","caller":"clawdinator-1"}"#,
        );
    });
    let (out, err) = server.stop();
    let logs = format!("{out}\n{err}");
    for secret in [CONTROL_TOKEN, GITHUB_TOKEN, "wrong-token-value"] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    let audit: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("audit") && l.contains("request_id"))
        .collect();
    assert_eq!(audit.len(), 3, "{err}");
    assert!(
        audit[0].contains("decision=\"accepted\"") || audit[0].contains("decision=accepted"),
        "{}",
        audit[0]
    );
    assert!(audit[1].contains("status=401"), "{}", audit[1]);
    assert!(audit[2].contains("status=403"), "{}", audit[2]);
}

#[test]
fn an_invalid_registry_stops_start_up_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("bad-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("instances.json");
    std::fs::write(&file, r#"{"Bad Id":{"host":"x","instanceType":"t3.large","bootstrapPrefix":"bootstrap/x","discordTokenSecret":"s"}}"#).unwrap();
    let (code, _, err) = control_api(
        &["serve"],
        &[("FLEET_REGISTRY", file.to_str().unwrap()), ("PORT", "0")],
    );
    // Removed before the assertions, so a failure leaves nothing behind either.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 2);
    assert!(
        err.contains("fleet registry") && err.contains("\"Bad Id\": instance id must match"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_injected_headers_are_refused_and_dispatch_nothing() {
    let github = github_accepting().await;
    let uri = github.uri();
    let server = LocalServer::start(&[
        ("CONTROL_API_TOKEN", CONTROL_TOKEN),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("GITHUB_API_URL", &uri),
    ]);
    let body = r#"{"action":"deploy","target":"clawdinator-2"}"#;
    let head = |auth_line: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\n{auth_line}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    let bytes = |auth_line: &[u8]| {
        let mut h = b"POST / HTTP/1.1\r\nHost: x\r\n".to_vec();
        h.extend_from_slice(auth_line);
        h.extend_from_slice(format!("\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
        String::from_utf8_lossy(&h).into_owned()
    };
    // A bare CR or a NUL inside the value, and an obsolete folded line: the HTTP parser
    // refuses the request before our handler sees it.
    for line in [
        format!("Authorization: Bearer {CONTROL_TOKEN}\rX-Injected: 1"),
        format!("Authorization: Bearer {CONTROL_TOKEN}\u{0}"),
        format!("Authorization: Bearer\r\n {CONTROL_TOKEN}"),
    ] {
        let (status, _) = raw_http(&server.url, &head(&line), body.as_bytes());
        assert!(status.starts_with("HTTP/1.1 400"), "{line:?}: {status}");
    }
    // Bytes outside visible ASCII in the token header: not a token at all.
    let mut line = b"X-Clawdinator-Token: ".to_vec();
    line.extend_from_slice(CONTROL_TOKEN.as_bytes());
    line.push(0xE2);
    let (status, answer) = raw_http(&server.url, &bytes(&line), body.as_bytes());
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(answer.contains("\"unauthorized\""), "{answer}");
    // A second, forged Authorization header does not win over the first.
    let two = format!("Authorization: Bearer wrong\r\nAuthorization: Bearer {CONTROL_TOKEN}");
    let (status, _) = raw_http(&server.url, &head(&two), body.as_bytes());
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(received(&github).await.is_empty());
    server.stop();
}
