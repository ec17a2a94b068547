//! Files: uploads streamed to the store, sniffed and sent back with their digest as `ETag`;
//! fetched only by their uploader and by whoever may see what they are attached to; attached
//! to messages and comments by id.

use crate::helpers::{Backend, TestApp, expect, problem, spawn_app, spawn_app_with};
use serde_json::{Value, json};

/// A PNG signature and header, then `size - 16` bytes that are not text.
fn png(size: usize) -> Vec<u8> {
    let mut bytes = vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, b'I', b'H', b'D', b'R',
    ];
    bytes.extend((16..size).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8));
    bytes
}

/// `POST route` with `bytes` as the body, named by `?name=` when given.
async fn upload(
    app: &TestApp,
    token: &str,
    route: &str,
    name: Option<&str>,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{route}", app.address))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes);
    if let Some(name) = name {
        request = request.query(&[("name", name)]);
    }
    request.send().await.expect("the server answers")
}

/// Uploads `bytes` as `name` through `route` (201), answering the stored file.
async fn uploaded(app: &TestApp, token: &str, route: &str, name: &str, bytes: Vec<u8>) -> Value {
    expect(upload(app, token, route, Some(name), bytes).await, 201).await
}

/// `GET path` as `token`: the status and the body's bytes.
async fn fetch(app: &TestApp, token: &str, path: &str) -> (u16, Vec<u8>) {
    let response = app.get_as(token, path).await;
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn an_upload_streams_back_sniffed_with_its_digest(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    // Twice the JSON bodies' limit: uploads have their own.
    let bytes = png(2 * 1024 * 1024 + 12_345);
    let file = uploaded(&app, &agent, "/api/v1/files", "notes.txt", bytes.clone()).await;
    assert_eq!(file["name"], "notes.txt");
    assert_eq!(file["content_type"], "image/png", "sniffed, not trusted");
    assert_eq!(file["size"], bytes.len());
    let sha256 = file["sha256"].as_str().unwrap().to_owned();
    assert!(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    let path = format!("/api/v1/files/{}", file["id"].as_str().unwrap());

    let response = app.get_as(&agent, &path).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename*=UTF-8''notes.txt"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("private, max-age=")
    );
    let etag = format!("\"{sha256}\"");
    assert_eq!(headers["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap() == bytes, "the same bytes");

    // The copy held is current: 304, no body.
    let revalidated = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&agent)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    assert!(revalidated.bytes().await.unwrap().is_empty());

    // Named by Content-Disposition; UTF-8 text is text.
    let response = app
        .client
        .post(format!("{}/api/v1/files", app.address))
        .bearer_auth(&agent)
        .header(
            "content-disposition",
            "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
        )
        .body("Ana, 10 ans d'expérience\n")
        .send()
        .await
        .unwrap();
    let text = expect(response, 201).await;
    assert_eq!(text["name"], "résumé.txt");
    assert_eq!(text["content_type"], "text/plain; charset=utf-8");
    let response = app
        .get_as(
            &agent,
            &format!("/api/v1/files/{}", text["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    );
    assert_eq!(response.text().await.unwrap(), "Ana, 10 ans d'expérience\n");

    // Nobody else's until it is attached somewhere they see; unknown ids alike.
    let (_, other_agent) = app.support_agent().await;
    let missing = app.get_as(&other_agent, &path).await;
    problem(missing, 404, "not-found").await;
    let unknown = app
        .get_as(
            &agent,
            &format!("/api/v1/files/{}", crate::helpers::new_id()),
        )
        .await;
    problem(unknown, 404, "not-found").await;

    // A keyed upload retried answers as the first time; another file under the key is refused.
    let keyed = |bytes: Vec<u8>| {
        app.client
            .post(format!("{}/api/v1/files?name=k.bin", app.address))
            .bearer_auth(&agent)
            .header("idempotency-key", "upload-1")
            .body(bytes)
            .send()
    };
    let first = keyed(png(5_000)).await.unwrap();
    let first = expect(first, 201).await;
    let retry = keyed(png(5_000)).await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(expect(retry, 201).await, first);
    let mut other = png(5_000);
    other[4_999] ^= 1;
    problem(keyed(other).await.unwrap(), 422, "idempotency-key-reused").await;
}

async fn bad_uploads_are_refused(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| config.max_file_bytes = 4_096).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let over = upload(&app, &agent, "/api/v1/files", Some("big.png"), png(4_097)).await;
    let refused = problem(over, 413, "too-large").await;
    assert!(refused["detail"].as_str().unwrap().contains("4096"));
    uploaded(&app, &agent, "/api/v1/files", "full.png", png(4_096)).await;

    let empty = upload(&app, &agent, "/api/v1/files", Some("empty.txt"), vec![]).await;
    problem(empty, 422, "validation").await;
    let unnamed = upload(&app, &agent, "/api/v1/files", None, png(100)).await;
    problem(unnamed, 422, "validation").await;
    for name in ["../etc/passwd", "a\\b", "tab\there", &"n".repeat(256)] {
        let bad = upload(&app, &agent, "/api/v1/files", Some(name), png(100)).await;
        problem(bad, 422, "validation").await;
    }
    // The widget's route has the same limit.
    let (_, visitor, _) = app.widget_visitor().await;
    let over = upload(
        &app,
        &visitor,
        "/widget/v1/files",
        Some("a.png"),
        png(4_097),
    )
    .await;
    problem(over, 413, "too-large").await;
    // Each side its own routes.
    let crossed = upload(&app, &visitor, "/api/v1/files", Some("a.png"), png(10)).await;
    problem(crossed, 403, "forbidden").await;
    let crossed = upload(&app, &agent, "/widget/v1/files", Some("a.png"), png(10)).await;
    problem(crossed, 403, "forbidden").await;

    if let Some(folder) = files_folder(&app) {
        assert_eq!(
            stored_contents(&folder),
            1,
            "only the file within the limit"
        );
    }
}

/// The SQLite server's file folder (`parley.db` → `parley.files`).
fn files_folder(app: &TestApp) -> Option<std::path::PathBuf> {
    let log = app.database_url.strip_prefix("sqlite://")?;
    Some(std::path::Path::new(log).with_extension("files"))
}

/// Files stored in the folder (temporary ones would be at its top).
fn stored_contents(folder: &std::path::Path) -> usize {
    let mut stored = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_dir(), "no leftover {entry:?}");
        stored += std::fs::read_dir(entry.path()).unwrap().count();
    }
    stored
}

#[tokio::test]
async fn identical_uploads_are_stored_once_on_sqlite() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let (_, visitor, _) = app.widget_visitor().await;
    let first = uploaded(&app, &agent, "/api/v1/files", "a.png", png(300_000)).await;
    let second = uploaded(&app, &visitor, "/widget/v1/files", "b.png", png(300_000)).await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["sha256"], second["sha256"]);
    let folder = files_folder(&app).unwrap();
    assert_eq!(stored_contents(&folder), 1);
    let sha256 = first["sha256"].as_str().unwrap();
    assert!(folder.join(&sha256[..2]).join(sha256).is_file());
    uploaded(&app, &agent, "/api/v1/files", "c.png", png(300_001)).await;
    assert_eq!(stored_contents(&folder), 2);
}

async fn files_are_seen_where_they_are_attached(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let (_, outsider) = app.agent(false).await;
    let (_, marta, _) = app.widget_visitor().await;
    let (_, bo, _) = app.widget_visitor().await;

    // Marta uploads a photo and sends it in her chat.
    let started = expect(
        app.post_as(
            &marta,
            "/widget/v1/conversations",
            &json!({"body": "Broken on arrival"}),
        )
        .await,
        201,
    )
    .await;
    let chat = started["id"].as_str().unwrap().to_owned();
    let photo = uploaded(&app, &marta, "/widget/v1/files", "parcel.png", png(70_000)).await;
    let photo_id = photo["id"].as_str().unwrap();
    let sent = expect(
        app.post_as(
            &marta,
            &format!("/widget/v1/conversations/{chat}/messages"),
            &json!({"body": "", "attachments": [{"file_id": photo_id}]}),
        )
        .await,
        201,
    )
    .await;
    let position = sent["position"].as_u64().unwrap();

    // Her conversation shows the file by id, with what the store knows of it.
    let detail = expect(
        app.get_as(
            &marta,
            &format!("/widget/v1/conversations/{chat}?position={position}"),
        )
        .await,
        200,
    )
    .await;
    let attachment = &detail["messages"][1]["attachments"][0];
    assert_eq!(attachment["file_id"], photo["id"]);
    assert_eq!(attachment["name"], "parcel.png");
    assert_eq!(attachment["content_type"], "image/png");
    assert_eq!(attachment["size"], 70_000);
    assert_eq!(attachment["sha256"], photo["sha256"]);
    assert_eq!(attachment["storage_ref"], format!("file:{photo_id}"));

    // Another visitor, and an agent who does not see the chat, are told it does not exist;
    // a support agent sees it.
    let photo_path = |prefix: &str| format!("{prefix}/files/{photo_id}?position={position}");
    let (status, _) = fetch(&app, &bo, &photo_path("/widget/v1")).await;
    assert_eq!(status, 404);
    let (status, _) = fetch(&app, &outsider, &photo_path("/api/v1")).await;
    assert_eq!(status, 404);
    let (status, bytes) = fetch(&app, &agent, &photo_path("/api/v1")).await;
    assert_eq!((status, bytes), (200, png(70_000)));
    // Bo cannot attach Marta's file to his own chat; nor can the agent, or anyone, an unknown id.
    let bos_chat = expect(
        app.post_as(&bo, "/widget/v1/conversations", &json!({"body": "Hello"}))
            .await,
        201,
    )
    .await;
    let theft = app
        .post_as(
            &bo,
            &format!(
                "/widget/v1/conversations/{}/messages",
                bos_chat["id"].as_str().unwrap()
            ),
            &json!({"body": "mine", "attachments": [{"file_id": photo_id}]}),
        )
        .await;
    problem(theft, 422, "validation").await;
    let messages = format!("/api/v1/conversations/{chat}/messages");
    let unknown = app
        .post_as(
            &agent,
            &messages,
            &json!({"body": "x", "attachments": [{"file_id": crate::helpers::new_id()}]}),
        )
        .await;
    problem(unknown, 422, "validation").await;

    // The agent's files: Marta sees the one in a public reply, not the one in an internal note.
    let note = uploaded(&app, &agent, "/api/v1/files", "internal.png", png(1_000)).await;
    let reply = uploaded(&app, &agent, "/api/v1/files", "label.pdf", png(2_000)).await;
    let (status, _) = fetch(
        &app,
        &marta,
        &format!("/widget/v1/files/{}", reply["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404, "not attached yet");
    expect(
        app.post_as(
            &agent,
            &messages,
            &json!({"body": "for us", "visibility": "internal",
                    "attachments": [{"file_id": note["id"]}]}),
        )
        .await,
        201,
    )
    .await;
    let answered = expect(
        app.post_as(
            &agent,
            &messages,
            &json!({"body": "Your return label",
                    "attachments": [{"file_id": reply["id"]},
                                    {"name": "terms.pdf", "content_type": "application/pdf",
                                     "size": 10, "storage_ref": "s3://bucket/terms.pdf"}]}),
        )
        .await,
        201,
    )
    .await;
    let position = answered["position"].as_u64().unwrap();
    let widget_file = |file: &Value| {
        format!(
            "/widget/v1/files/{}?position={position}",
            file["id"].as_str().unwrap()
        )
    };
    let (status, bytes) = fetch(&app, &marta, &widget_file(&reply)).await;
    assert_eq!((status, bytes), (200, png(2_000)));
    let (status, _) = fetch(&app, &marta, &widget_file(&note)).await;
    assert_eq!(status, 404, "an internal note's file");
    let staff_detail = expect(
        app.get_as(
            &agent,
            &format!("/api/v1/conversations/{chat}?position={position}"),
        )
        .await,
        200,
    )
    .await;
    let last = staff_detail["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["attachments"][0]["file_id"], reply["id"]);
    assert_eq!(last["attachments"][0]["sha256"], reply["sha256"]);
    assert_eq!(
        last["attachments"][1]["storage_ref"],
        "s3://bucket/terms.pdf"
    );
    assert!(last["attachments"][1].get("file_id").is_none());

    // On a ticket, every staff member may fetch it; visitors never.
    let ticket = expect(
        app.post_as(
            &agent,
            "/api/v1/tickets",
            &json!({"title": "Damaged parcel"}),
        )
        .await,
        201,
    )
    .await;
    let evidence = uploaded(&app, &agent, "/api/v1/files", "evidence.png", png(3_000)).await;
    let commented = expect(
        app.post_as(
            &agent,
            &format!(
                "/api/v1/tickets/{}/comments",
                ticket["id"].as_str().unwrap()
            ),
            &json!({"visibility": "internal", "attachments": [{"file_id": evidence["id"]}]}),
        )
        .await,
        201,
    )
    .await;
    let position = commented["position"].as_u64().unwrap();
    let evidence_id = evidence["id"].as_str().unwrap();
    let (status, bytes) = fetch(
        &app,
        &outsider,
        &format!("/api/v1/files/{evidence_id}?position={position}"),
    )
    .await;
    assert_eq!((status, bytes), (200, png(3_000)));
    let (status, _) = fetch(
        &app,
        &marta,
        &format!("/widget/v1/files/{evidence_id}?position={position}"),
    )
    .await;
    assert_eq!(status, 404);
}

/// The file routes are documented: uploads take raw bytes, downloads answer them.
#[tokio::test]
async fn the_file_routes_are_documented() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let paths = &doc["paths"];
    for prefix in ["/api/v1", "/widget/v1"] {
        let upload = &paths[format!("{prefix}/files")]["post"];
        assert!(upload["operationId"].is_string(), "{prefix}");
        assert!(
            upload["requestBody"]["content"]["application/octet-stream"].is_object(),
            "{upload}"
        );
        for status in ["201", "413", "422"] {
            assert!(upload["responses"][status].is_object(), "{prefix} {status}");
        }
        let params: Vec<&str> = upload["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"name") && params.contains(&"Idempotency-Key"));
        let download = &paths[format!("{prefix}/files/{{file_id}}")]["get"];
        for status in ["200", "304", "404"] {
            assert!(
                download["responses"][status].is_object(),
                "{prefix} {status}"
            );
        }
        let params: Vec<&str> = download["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["file_id", "position", "If-None-Match"]);
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["UploadedFile"].is_object());
    assert!(schemas["FileRef"].is_object());
    assert!(schemas["AttachmentDto"].is_object());
}

on_both_backends! {
    an_upload_streams_back_sniffed_with_its_digest => round_trip_on_sqlite, round_trip_on_postgres;
    bad_uploads_are_refused => refused_on_sqlite, refused_on_postgres;
    files_are_seen_where_they_are_attached => attached_on_sqlite, attached_on_postgres;
}
