//! SigV4: an independent verifier (checked against AWS's published vectors) judges what `fleet` really sends.
//!
//! The verifier below is written from the SigV4 specification with `hmac` and `sha2` and
//! shares no code with `aws-sigv4`. It is first held to AWS's signing test suite, then
//! used on the bytes the real `fleet` binary put on the wire to the real local API.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleet_skill::config::InvokerCredentials;
use fleet_skill::sigv4::Signer;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use support::*;

const AWS_KEY_ID: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the time of AWS's signing test suite.
const VECTOR_TIME: u64 = 1_440_938_160;

// ---- The verifier ---------------------------------------------------------------------

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The parts of an `AWS4-HMAC-SHA256` Authorization header.
#[derive(Debug)]
struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not an AWS4-HMAC-SHA256 authorization")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or("malformed part")?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => return Err(format!("unknown part {k}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(format!("bad credential scope {credential}"));
    };
    Ok(Authorization {
        access_key_id: id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature.ok_or("no Signature")?,
    })
}

/// `a=1&b=2` sorted by name then value, as SigV4 wants (inputs here are already encoded).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a request's SigV4 header signature against `secret`, per the specification.
fn verify(req: &RawRequest, secret: &str) -> Result<Authorization, String> {
    let auth = parse_authorization(req.header("authorization").ok_or("no authorization")?)?;
    let amz_date = req.header("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(&auth.date) {
        return Err("x-amz-date and the credential scope disagree".into());
    }
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    if sorted != auth.signed_headers {
        return Err("SignedHeaders not sorted".into());
    }
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} was not sent"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let body_hash = sha256_hex(&req.body);
    if let Some(claimed) = req.header("x-amz-content-sha256") {
        if claimed != body_hash {
            return Err("x-amz-content-sha256 is not the body's hash".into());
        }
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(query),
        canonical_headers,
        auth.signed_headers.join(";"),
        body_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    let k_region = hmac(&k_date, &auth.region);
    let k_service = hmac(&k_region, &auth.service);
    let k_signing = hmac(&k_service, "aws4_request");
    let expected = hex(&hmac(&k_signing, &string_to_sign));
    if expected != auth.signature {
        return Err(format!(
            "signature mismatch: expected {expected}, got {}",
            auth.signature
        ));
    }
    Ok(auth)
}

/// A test-suite request file (`\n` line ends) as the wire would carry it.
fn vector(head: &[&str], body: &str) -> RawRequest {
    let text = format!("{}\r\n\r\n{body}", head.join("\r\n"));
    RawRequest::parse(text.as_bytes())
}

const SESSION_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

/// From AWS's SigV4 test suite (`aws-signing-test-suite/v4/*/header-signed-request.txt`).
fn aws_vectors() -> Vec<(&'static str, RawRequest)> {
    let sts_token = format!("X-Amz-Security-Token:{SESSION_TOKEN}");
    vec![
        ("get-vanilla", vector(&[
            "GET / HTTP/1.1",
            "Host:example.amazonaws.com",
            "X-Amz-Date:20150830T123600Z",
            "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ], "")),
        ("post-vanilla", vector(&[
            "POST / HTTP/1.1",
            "Host:example.amazonaws.com",
            "X-Amz-Date:20150830T123600Z",
            "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ], "")),
        ("post-x-www-form-urlencoded", vector(&[
            "POST / HTTP/1.1",
            "Content-Type:application/x-www-form-urlencoded",
            "Host:example.amazonaws.com",
            "Content-Length:13",
            "X-Amz-Date:20150830T123600Z",
            "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        ], "Param1=value1")),
        ("post-sts-header-before", vector(&[
            "POST / HTTP/1.1",
            "Host:example.amazonaws.com",
            &sts_token,
            "X-Amz-Date:20150830T123600Z",
            "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        ], "")),
    ]
}

#[test]
fn the_verifier_accepts_awss_published_vectors_and_rejects_tampering() {
    for (name, req) in aws_vectors() {
        let auth = verify(&req, AWS_SECRET).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(auth.access_key_id, AWS_KEY_ID);
        // Each kind of tampering breaks the signature.
        let mut wrong_secret = verify(&req, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ");
        assert!(wrong_secret.is_err(), "{name}: wrong secret accepted");
        let mut other_host = req.clone();
        for h in &mut other_host.headers {
            if h.0 == "host" {
                h.1 = "example.amazonaws.co".into();
            }
        }
        wrong_secret = verify(&other_host, AWS_SECRET);
        assert!(wrong_secret.is_err(), "{name}: changed host accepted");
        let mut other_body = req.clone();
        other_body.body.extend_from_slice(b"x");
        assert!(
            verify(&other_body, AWS_SECRET).is_err(),
            "{name}: changed body accepted"
        );
    }
}

#[test]
fn the_signer_reproduces_the_aws_vector_with_a_payload_hash() {
    // post-x-www-form-urlencoded is the suite's case with x-amz-content-sha256, as `fleet` sends.
    let signer = Signer::for_service(
        InvokerCredentials::new(AWS_KEY_ID, AWS_SECRET, None, "test vector"),
        "us-east-1".into(),
        "service",
    );
    let headers = signer
        .sign(
            "POST",
            "https://example.amazonaws.com/",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "example.amazonaws.com"),
                ("content-length", "13"),
            ],
            b"Param1=value1",
            UNIX_EPOCH + Duration::from_secs(VECTOR_TIME),
        )
        .unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(
        get("x-amz-content-sha256"),
        Some("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
    );
    assert_eq!(
        get("authorization"),
        Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b")
    );
    assert_eq!(get("x-amz-security-token"), None);
}

// ---- What `fleet` sends ------------------------------------------------------------------

/// `YYYYMMDDTHHMMSSZ` → seconds since the epoch (civil-from-days, proleptic Gregorian).
fn amz_date_to_unix(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as u64
}

#[test]
fn amz_dates_convert() {
    assert_eq!(amz_date_to_unix("20150830T123600Z"), VECTOR_TIME);
    assert_eq!(amz_date_to_unix("19700101T000000Z"), 0);
}

/// Checks the one request `fleet` sent through the harness: signed for `lambda` in
/// `region`, verifiable, token in the seed header, no bearer anywhere.
fn assert_signed(h: &Harness, key_id: &str, secret: &str, region: &str, session: Option<&str>) {
    let sent = h.proxy.requests();
    assert_eq!(sent.len(), 1);
    let req = &sent[0];
    let auth = verify(req, secret).unwrap_or_else(|e| panic!("{e}: {req:?}"));
    assert_eq!(auth.access_key_id, key_id);
    assert_eq!(
        (auth.region.as_str(), auth.service.as_str()),
        (region, "lambda")
    );
    let mut expected = vec![
        "content-type",
        "host",
        "idempotency-key",
        "x-amz-content-sha256",
        "x-amz-date",
    ];
    if session.is_some() {
        expected.push("x-amz-security-token");
    }
    expected.push("x-clawdinator-token");
    assert_eq!(auth.signed_headers, expected);
    assert_eq!(req.header("x-amz-security-token"), session);
    assert_eq!(req.header("x-clawdinator-token"), Some(CONTROL_TOKEN));
    assert_eq!(
        req.header("x-amz-content-sha256").unwrap(),
        sha256_hex(&req.body)
    );
    assert!(
        req.headers
            .iter()
            .all(|(_, v)| !v.to_ascii_lowercase().starts_with("bearer")),
        "no bearer when signing: {:?}",
        req.headers
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed_at = amz_date_to_unix(req.header("x-amz-date").unwrap());
    assert!(
        now.abs_diff(signed_at) < 300,
        "signed now, not at {signed_at}"
    );
}

#[test]
fn with_environment_credentials_fleet_signs_and_the_real_api_accepts_the_seed_header() {
    let h = Harness::start(GitHub::Accepts);
    let run = h
        .fleet()
        .env("AWS_ACCESS_KEY_ID", "AKIDFLEETENV")
        .env("AWS_SECRET_ACCESS_KEY", "fleetEnvSecret/Key+0123456789")
        .env("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEFLEETSESSION")
        .env("AWS_REGION", "eu-central-1")
        .run(&["deploy", "clawdinator-2", "--caller", "human:ops"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("deploy queued for clawdinator-2"));
    assert_eq!(h.dispatches().len(), 1);
    assert_signed(
        &h,
        "AKIDFLEETENV",
        "fleetEnvSecret/Key+0123456789",
        "eu-central-1",
        Some("FwoGZXIvYXdzEFLEETSESSION"),
    );
    for secret in ["fleetEnvSecret/Key+0123456789", "FwoGZXIvYXdzEFLEETSESSION"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
}

#[test]
fn with_agenix_credential_files_fleet_signs_without_a_session_token() {
    let h = Harness::start(GitHub::Accepts);
    h.dir.write(
        "agenix/clawdinator-control-aws-access-key-id",
        "AKIDFLEETFILE\n",
    );
    h.dir.write(
        "agenix/clawdinator-control-aws-secret-access-key",
        "fleetFileSecret0123456789\n",
    );
    let run = h
        .fleet()
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .run(&["chat", "/fleet deploy clawdinator-1"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_signed(
        &h,
        "AKIDFLEETFILE",
        "fleetFileSecret0123456789",
        "us-west-2",
        None,
    );
}

#[test]
fn half_of_the_agenix_credentials_is_a_configuration_error() {
    let h = Harness::start(GitHub::Accepts);
    h.dir.write(
        "agenix/clawdinator-control-aws-access-key-id",
        "AKIDFLEETFILE\n",
    );
    let run = h
        .fleet()
        .env("AWS_REGION", "us-west-2")
        .run(&["deploy", "clawdinator-1"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("clawdinator-control-aws-secret-access-key is not"),
        "{}",
        run.stderr
    );
    assert_eq!(h.proxy.connection_count(), 0);
}

#[test]
fn without_credentials_nothing_is_signed_and_the_token_is_a_bearer() {
    let h = Harness::start(GitHub::Accepts);
    let run = h
        .fleet()
        .env("AWS_REGION", "eu-central-1")
        .run(&["deploy", "all"]);
    assert_eq!(run.code, 0, "{run:?}");
    let req = &h.proxy.requests()[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {CONTROL_TOKEN}").as_str())
    );
    assert!(req.header("x-clawdinator-token").is_none());
    assert!(req.headers.iter().all(|(k, _)| !k.starts_with("x-amz-")));
}

/// `fleet` whose AWS default chain has only `config` (an AWS config file with `profile`
/// in force): no shared credentials file, no instance metadata, and a HOME (the
/// harness's directory) with nothing under `~/.aws`.
fn fleet_with_profile(h: &Harness, profile: &str, config: &str, region: &str) -> Fleet {
    let config = h.dir.write("aws-config", config);
    let empty = h.dir.write("aws-credentials", "");
    let mut fleet = h.fleet();
    fleet
        .env("AWS_PROFILE", profile)
        .env("AWS_CONFIG_FILE", config.to_str().unwrap())
        .env("AWS_SHARED_CREDENTIALS_FILE", empty.to_str().unwrap())
        .env("HOME", config.parent().unwrap().to_str().unwrap())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", region);
    fleet
}

#[test]
fn a_named_profile_signs_through_the_aws_default_chain() {
    // What a fleet host's profile does (role_arn + credential_source + role_session_name)
    // reduced to static keys, since no STS is reachable here: the chain, not fleet's own
    // env/agenix lookup, must supply the credentials.
    let h = Harness::start(GitHub::Accepts);
    let run = fleet_with_profile(
        &h,
        "fleet-invoker",
        "[profile fleet-invoker]\naws_access_key_id = AKIDFLEETPROFILE\naws_secret_access_key = fleetProfileSecret0123456789\nregion = ap-southeast-2\n",
        "ap-southeast-2",
    )
    .run(&["deploy", "clawdinator-2", "--caller", "human:ops"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_signed(
        &h,
        "AKIDFLEETPROFILE",
        "fleetProfileSecret0123456789",
        "ap-southeast-2",
        None,
    );
    assert!(
        !run.stdout.contains("fleetProfileSecret") && !run.stderr.contains("fleetProfileSecret")
    );
}

#[test]
fn a_credential_process_profile_signs_with_what_the_process_prints() {
    let h = Harness::start(GitHub::Accepts);
    let process = h.dir.write(
        "creds.sh",
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDFROMPROCESS\", \"SecretAccessKey\": \"processSecret0123456789\", \"SessionToken\": \"processSession\"}'\n",
    );
    std::fs::set_permissions(
        &process,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let config = format!(
        "[profile from-process]\ncredential_process = {}\nregion = eu-west-1\n",
        process.display()
    );
    let run = fleet_with_profile(&h, "from-process", &config, "eu-west-1").run(&[
        "deploy",
        "clawdinator-2",
        "--caller",
        "human:ops",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_signed(
        &h,
        "AKIDFROMPROCESS",
        "processSecret0123456789",
        "eu-west-1",
        Some("processSession"),
    );
    assert!(!run.stderr.contains("processSecret") && !run.stdout.contains("processSecret"));
}

#[test]
fn an_sso_profile_before_aws_sso_login_is_a_configuration_error_and_sends_nothing() {
    // No SSO portal can be reached here; what this shows is that SSO profiles are
    // understood (without the SDK's `sso` feature the chain refuses them outright) and
    // that a missing login stops fleet before anything is sent.
    // fleet_with_profile's HOME has no ~/.aws/sso/cache: nobody ran `aws sso login`.
    let h = Harness::start(GitHub::Accepts);
    let run = fleet_with_profile(
        &h,
        "ops",
        "[profile ops]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = FleetOperator\nregion = eu-west-1\n\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
        "eu-west-1",
    )
    .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("no AWS credentials to sign for the Function URL"),
        "{}",
        run.stderr
    );
    // The cause, not only the SDK's "an error occurred while loading credentials".
    assert!(
        run.stderr.contains("failed to load the cached SSO token"),
        "{}",
        run.stderr
    );
    assert_eq!(h.proxy.connection_count(), 0);
}

#[test]
fn a_named_profile_without_credentials_is_a_configuration_error_and_sends_nothing() {
    let h = Harness::start(GitHub::Accepts);
    let run = fleet_with_profile(
        &h,
        "empty",
        "[profile empty]\nregion = eu-central-1\n",
        "eu-central-1",
    )
    .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("no AWS credentials to sign for the Function URL"),
        "{}",
        run.stderr
    );
    assert_eq!(h.proxy.connection_count(), 0);
}
