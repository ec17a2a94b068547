//! `parley bench` runs end to end on small numbers and prints the JSON fields documented in
//! `docs/benchmarks.md` on its last line. (The figures themselves are measured by hand, with
//! the commands in that file, never asserted here.)

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_parley"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("parley runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "parley bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(last).expect("the last line is JSON")
}

fn assert_positive(report: &serde_json::Value, fields: &[&str]) {
    for field in fields {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {report}"));
        assert!(value > 0.0, "{field} is {value}");
    }
}

/// A small `bench append` load: enough to exercise every phase.
const SMALL_APPEND: [&str; 6] = ["--events", "400", "--writers", "8", "--naive-events", "40"];

/// What every `bench append` report carries.
const APPEND_FIELDS: [&str; 6] = [
    "events_per_sec",
    "p50_ms",
    "p99_ms",
    "peak_rss_mb",
    "naive_events_per_sec",
    "speedup",
];

fn postgres_available() -> bool {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(parley_eventlog::testing::postgres_database())
        .is_some()
}

#[test]
fn bench_append_on_sqlite_reports_throughput_latency_and_the_naive_baseline() {
    let report = bench(&[&["append"], &SMALL_APPEND[..]].concat());
    assert_positive(&report, &APPEND_FIELDS);
}

#[test]
fn bench_replay_on_sqlite_reads_every_event_back() {
    let report = bench(&["replay", "--events", "3000", "--writers", "4"]);
    assert_eq!(report["events"], 3000);
    assert_positive(
        &report,
        &["events_per_sec", "p50_ms", "p99_ms", "peak_rss_mb"],
    );
}

#[test]
fn bench_append_on_postgres_also_reports_the_raw_insert_loop() {
    if !postgres_available() {
        return;
    }
    let server = parley_eventlog::testing::server_url();
    let report = bench(
        &[
            &["append", "--backend", "postgres", "--database-url", &server],
            &SMALL_APPEND[..],
        ]
        .concat(),
    );
    assert_positive(&report, &APPEND_FIELDS);
    assert_positive(&report, &["raw_insert_events_per_sec", "ratio_to_raw"]);
    let replay = bench(&[
        "replay",
        "--backend",
        "postgres",
        "--database-url",
        &server,
        "--events",
        "2000",
    ]);
    assert_eq!(replay["events"], 2000);
}

#[test]
fn bench_commands_on_sqlite_reports_both_cached_and_uncached_rates() {
    let report = bench(&["commands", "--events", "200", "--writers", "4"]);
    assert_eq!(report["commands"], 200);
    assert_positive(
        &report,
        &[
            "commands_per_sec",
            "p50_ms",
            "p99_ms",
            "uncached_commands_per_sec",
        ],
    );
}

#[test]
fn bench_refuses_zero_events() {
    let output = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["bench", "append", "--events", "0"])
        .output()
        .expect("parley runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 1"));
}

#[test]
fn bench_rebuild_on_sqlite_rebuilds_every_read_model_and_times_the_inbox() {
    let report = bench(&["rebuild", "--events", "3000", "--writers", "4"]);
    assert_eq!(report["events"], 3000);
    assert_eq!(report["read_models"], 9);
    assert_positive(
        &report,
        &[
            "events_per_sec",
            "peak_rss_mb",
            "inbox_query_p99_ms",
            "inbox_conversations",
        ],
    );
    for (name, figures) in report["per_projection"]
        .as_object()
        .expect("per projection")
    {
        assert_eq!(figures["events"], 3000, "{name}");
    }
}

#[test]
fn bench_http_posts_messages_and_reads_inboxes_through_the_real_server() {
    let report = bench(&["http", "--events", "400", "--writers", "4"]);
    assert_eq!(report["connections"], 4);
    assert_eq!(report["post_message_requests"], 400);
    assert_eq!(report["post_message_failures"], 0);
    assert_eq!(report["get_inbox_requests"], 400);
    assert_eq!(report["get_inbox_failures"], 0);
    assert_positive(
        &report,
        &[
            "post_message_per_sec",
            "post_message_p99_ms",
            "get_inbox_per_sec",
            "get_inbox_p99_ms",
            "post_message_server_cpu_us",
            "get_inbox_server_cpu_us",
            "server_peak_rss_mb",
        ],
    );
}

#[test]
fn bench_streams_holds_stalled_streams_beside_normal_traffic() {
    let report = bench(&[
        "streams",
        "--events",
        "200",
        "--writers",
        "2",
        "--streams",
        "12",
    ]);
    assert_eq!(report["stalled_streams"], 12);
    assert_eq!(report["large_messages_in_log"], 600);
    for phase in ["baseline", "with_streams", "after"] {
        assert_eq!(report[format!("{phase}_failures")], 0, "{phase}");
    }
    assert_positive(
        &report,
        &[
            "baseline_p99_ms",
            "with_streams_p99_ms",
            "after_p99_ms",
            "baseline_server_rss_mb",
            "with_streams_server_rss_mb",
            "server_peak_rss_mb",
        ],
    );
}

#[test]
fn bench_webhooks_opens_tickets_from_signed_webhooks_and_dispatches_replies() {
    for platform in ["whatsapp", "wechat"] {
        let report = bench(&[
            "webhooks",
            "--platform",
            platform,
            "--events",
            "400",
            "--writers",
            "4",
            "--replies",
            "200",
        ]);
        assert_eq!(report["webhook_failures"], 0, "{platform}");
        assert_eq!(report["platform"], platform);
        // 400 webhooks, then 2,000 more in the light phase, from 2,000 customers: each
        // customer's first opens a ticket.
        assert_eq!(report["tickets"], 2000, "{platform}");
        assert_eq!(report["replies_requested"], 200, "{platform}");
        assert_eq!(report["replies_sent"], 200, "{platform}");
        assert_positive(
            &report,
            &[
                "webhook_per_sec",
                "webhook_p99_ms",
                "webhook_to_stream_p99_ms",
                "light_webhook_to_stream_p99_ms",
                "replies_dispatched_per_sec",
            ],
        );
    }
}
