//! One deploy at a time across API processes, locks and the queue, end to end: two real
//! `control-api serve` processes share a state bucket in moto (whose `If-None-Match: *`
//! is atomic), and GitHub is the loopback double, listing a dispatched run only seconds
//! after its dispatch, as GitHub does. Every test counts the dispatches GitHub received.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

async fn s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto_sdk().await)
            .force_path_style(true)
            .build(),
    )
}

/// A fresh bucket in moto: each test has its own state.
async fn bucket(name: &str) -> String {
    let name = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    s3().await
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    name
}

async fn put(bucket: &str, key: &str, body: &str) {
    s3().await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// Every audit record in the bucket.
async fn audit(bucket: &str) -> Vec<Value> {
    let s3 = s3().await;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("audit/")
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        let object = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        records.push(serde_json::from_slice(&bytes).unwrap());
    }
    records
}

/// GitHub listing runs 3 s late, and two API processes sharing `bucket`.
async fn world(bucket: &str, drain_secs: &str) -> (GitHubDouble, LocalServer, LocalServer) {
    let github = github_accepting().await;
    github.list_runs_after(Duration::from_secs(3));
    let uri = github.uri();
    let env = [
        ("CONTROL_API_TOKEN", CONTROL_TOKEN),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("GITHUB_API_URL", uri.as_str()),
        ("FLEET_STATE_BUCKET", bucket),
        ("FLEET_QUEUE_DRAIN_SECS", drain_secs),
    ];
    let a = LocalServer::start(&env);
    let b = LocalServer::start(&env);
    (github, a, b)
}

/// POSTs `body` with the shared token and, for deploys, an idempotency key of its own.
fn call(server: &LocalServer, body: &Value) -> (u16, Value) {
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let key = uuid::Uuid::new_v4().to_string();
    tokio::task::block_in_place(|| {
        server.post(
            &[("authorization", &bearer), ("idempotency-key", &key)],
            &body.to_string(),
        )
    })
}

fn deploy(target: &str, caller: &str) -> Value {
    json!({"action": "deploy", "target": target, "caller": caller})
}

fn queued(target: &str) -> Value {
    json!({"action": "deploy", "target": target, "caller": "human:ops", "queue": true})
}

/// The request ids GitHub was dispatched, in order, once there are `n` (or 30 s passed).
async fn dispatched(github: &GitHubDouble, n: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = github.dispatched_request_ids().await;
        if ids.len() >= n || Instant::now() > until {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_different_deploys_over_two_processes_dispatch_once() {
    let bucket = bucket("lease-race").await;
    let (github, a, b) = world(&bucket, "3600").await;
    let targets = [
        "clawdinator-1",
        "clawdinator-2",
        "clawdinator-babelfish",
        "all",
    ];
    let answers: Vec<(u16, Value)> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..20)
                .map(|i| {
                    let server = if i % 2 == 0 { &a } else { &b };
                    let body = deploy(targets[i % 4], &format!("human:op{i}"));
                    scope.spawn(move || call(server, &body))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let winner = accepted[0]["request_id"].as_str().unwrap();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (409, Some("deploy_in_flight")),
            "{body}"
        );
        assert_eq!(body["lease"]["request_id"], winner, "{body}");
    }
    assert_eq!(dispatched(&github, 1).await, [winner.to_owned()]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(github.dispatches().await.len(), 1);
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_race_hold_deploys_expire_and_are_the_workflows_check_too() {
    let bucket = bucket("locks").await;
    let (github, a, b) = world(&bucket, "3600").await;
    let lock = |caller: &str, target: &str, ttl: u32| json!({"action": "lock", "target": target, "caller": caller, "reason": format!("{caller} debugging"), "ttl_secs": ttl});
    let (first, second) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let x = scope.spawn(|| call(&a, &lock("human:alice", "clawdinator-2", 600)));
            let y = scope.spawn(|| call(&b, &lock("human:bob", "clawdinator-2", 600)));
            (x.join().unwrap(), y.join().unwrap())
        })
    });
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let (won, lost) = if first.0 == 200 {
        (first.1, second.1)
    } else {
        (second.1, first.1)
    };
    assert_eq!(lost["error"], "lock_held");
    assert_eq!(lost["lock"]["holder"], won["lock"]["holder"]);
    // Under the lock: 423 for the host and for all, from either process; nothing dispatched.
    for (server, target) in [(&a, "clawdinator-2"), (&b, "all")] {
        let (s, body) = call(server, &deploy(target, "human:carol"));
        assert_eq!((s, body["error"].as_str()), (423, Some("locked")), "{body}");
        assert_eq!(body["lock"]["holder"], won["lock"]["holder"]);
        assert!(body["lock"]["expires"].is_string());
    }
    // A bot may not release a human's lock.
    let unlock = json!({"action": "unlock", "target": "clawdinator-2", "caller": "clawdinator-1"});
    let (s, body) = call(&a, &unlock);
    assert_eq!(
        (s, body["error"].as_str()),
        (403, Some("lock_not_allowed")),
        "{body}"
    );
    // The workflow's own check sees it, naming holder, reason and expiry.
    let env = [("FLEET_STATE_BUCKET", bucket.as_str())];
    let (code, _, err) = control_api(&["check-lock", "--target", "clawdinator-2"], &env);
    assert_eq!(code, 1, "{err}");
    let holder = won["lock"]["holder"].as_str().unwrap();
    assert!(err.contains(holder) && err.contains("debugging"), "{err}");
    assert!(
        err.contains(won["lock"]["expires"].as_str().unwrap()),
        "{err}"
    );
    // A lock that ran out holds nothing.
    let (s, body) = call(&b, &lock("human:dave", "clawdinator-1", 1));
    assert_eq!(s, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, out, err) = control_api(&["check-lock", "--target", "clawdinator-1"], &env);
    assert_eq!(code, 0, "{out} {err}");
    assert!(github.dispatches().await.is_empty());
    let (s, body) = call(&a, &deploy("clawdinator-1", "human:dave"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(dispatched(&github, 1).await.len(), 1);
    let actions: Vec<String> = audit(&bucket)
        .await
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_owned))
        .collect();
    assert!(actions.iter().any(|a| a == "lock_expired"), "{actions:?}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_deploys_go_in_order_one_at_a_time_and_a_locked_one_is_dropped() {
    let bucket = bucket("queue").await;
    let (github, a, b) = world(&bucket, "1").await;
    let (s, first) = call(&a, &deploy("clawdinator-2", "human:ops"));
    assert_eq!(s, 200, "{first}");
    let mut ids = vec![first["request_id"].as_str().unwrap().to_owned()];
    for (i, target) in [
        "clawdinator-1",
        "clawdinator-babelfish",
        "clawdinator-1",
        "clawdinator-2",
    ]
    .iter()
    .enumerate()
    {
        let server = if i % 2 == 0 { &a } else { &b };
        let (s, body) = call(server, &queued(target));
        assert_eq!(
            (s, body["position"].as_u64()),
            (202, Some(i as u64 + 1)),
            "{body}"
        );
        ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    // Each queued deploy goes only after the report of the one before, in order.
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(github.dispatches().await.len(), n, "none before the report");
        put(&bucket, &format!("reports/{}.json", ids[n - 1]), "{}").await;
        assert_eq!(dispatched(&github, n + 1).await, ids[..=n], "in order");
    }
    // The last one's host got locked while it waited: dropped, with a record saying why.
    let lock = json!({"action": "lock", "target": "clawdinator-2", "caller": "human:ops", "reason": "disk full", "ttl_secs": 600});
    assert_eq!(call(&b, &lock).0, 200);
    put(&bucket, &format!("reports/{}.json", ids[3]), "{}").await;
    let until = Instant::now() + Duration::from_secs(20);
    let dropped = loop {
        let records = audit(&bucket).await;
        if let Some(r) = records
            .into_iter()
            .find(|r| r["action"] == "dequeue" && r["decision"] == "dropped")
        {
            break r;
        }
        assert!(Instant::now() < until, "no dequeue record");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dropped["about_request_id"], ids[4].as_str());
    assert_eq!(dropped["error"], "locked");
    assert!(
        dropped["reason"].as_str().unwrap().contains("disk full"),
        "{dropped}"
    );
    assert_eq!(github.dispatches().await.len(), 4);
    let (_, queue) = call(&a, &json!({"action": "queue"}));
    assert_eq!(queue["queue"], json!([]), "{queue}");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timer_drains_after_a_run_ended_without_its_report_and_cancel_removes_an_entry() {
    let bucket = bucket("schedule").await;
    let (github, a, b) = world(&bucket, "1").await;
    let (s, first) = call(&a, &deploy("clawdinator-2", "human:ops"));
    assert_eq!(s, 200, "{first}");
    let (_, cancelled) = call(&b, &queued("clawdinator-1"));
    let (_, next) = call(&a, &queued("clawdinator-babelfish"));
    let cancel =
        json!({"action": "cancel", "request_id": cancelled["request_id"], "caller": "human:ops"});
    let (s, body) = call(&b, &cancel);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["cancelled"]["request_id"], cancelled["request_id"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(github.dispatches().await.len(), 1);
    // No report and no event: the run is seen finished, and the timer's drain goes on.
    github.set_run(
        first["run_id"].as_u64().unwrap(),
        "completed",
        Some("success"),
        None,
    );
    let sent = dispatched(&github, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1],
        next["request_id"].as_str().unwrap(),
        "the cancelled one never goes"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(github.dispatches().await.len(), 2);
    a.stop();
    b.stop();
}

/// The state store's conditional delete on S3 (moto): it removes the version it was given,
/// never a newer one, and a key already gone is no error. The lease and locks end this way.
#[tokio::test]
async fn the_state_stores_conditional_delete_removes_only_the_version_it_names() {
    use control_api::domain::ports::{StateStore, Written};
    use control_api::outbound::state::S3State;
    let store = S3State::new(s3().await, bucket("delete-if").await);
    let key = "leases/deploy.json";
    let Written::Done { etag: first } = store.create(key, b"{\"n\":1}".to_vec()).await.unwrap()
    else {
        panic!("a fresh key is created")
    };
    let written = store.replace(key, b"{\"n\":2}".to_vec(), &first).await;
    let Written::Done { etag: second } = written.unwrap() else {
        panic!("the version just written is replaced")
    };
    assert!(!store.delete_if(key, &first).await.unwrap(), "a stale etag");
    let left = store
        .read(key)
        .await
        .unwrap()
        .expect("the newer version stays");
    assert_eq!(left.body, b"{\"n\":2}");
    assert!(store.delete_if(key, &second).await.unwrap());
    assert!(store.read(key).await.unwrap().is_none());
    assert!(
        !store.delete_if(key, &second).await.unwrap(),
        "already gone"
    );
}
