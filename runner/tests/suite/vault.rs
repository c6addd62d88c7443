//! The sealed secret store on both backends: round trip, names-only listing, and attacks on the
//! rows (tamper, move between workspaces or names, relabel the key version, wrong key), rotation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use paddock::store::StoreError;
use paddock::store::repos::NewRepo;
use paddock::vault::{KeyRing, VaultError};

use super::support::TestDb;
use crate::both;

fn key(v: u32, seed: u8) -> String {
    let k: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    format!("{v}:{}", STANDARD.encode(k))
}

fn ring(entries: &[String]) -> KeyRing {
    KeyRing::parse(entries).unwrap()
}

const TOKEN: &str = "ghp_realTokenValue0123456789abcdefXYZ";

async fn raw_row(db: &TestDb, ws: i64, name: &str) -> (i64, String, String) {
    sqlx::query_as(
        "SELECT key_version, nonce, ciphertext FROM secrets WHERE workspace_id = $1 AND name = $2",
    )
    .bind(ws)
    .bind(name.to_string())
    .fetch_one(db.store.pool())
    .await
    .unwrap()
}

fn is_open_failure(r: Result<Option<paddock::vault::SecretValue>, StoreError>) -> bool {
    matches!(r, Err(StoreError::Vault(VaultError::Open)))
}

async fn round_trip_and_names_only(db: TestDb) {
    let s = &db.store;
    let r = ring(&[key(1, 1)]);
    let ws = s.ensure_workspace("acme").await.unwrap().id;
    let meta = s.put_secret(&r, ws, "gh-token", TOKEN).await.unwrap();
    assert_eq!((meta.name.as_str(), meta.key_version), ("gh-token", 1));
    let v = s.open_secret(&r, ws, "gh-token").await.unwrap().unwrap();
    assert_eq!(v.expose(), TOKEN);
    assert!(!format!("{v:?} {v}").contains("ghp_"));
    // the stored row holds no plaintext
    let (_, nonce, ct) = raw_row(&db, ws, "gh-token").await;
    assert!(!ct.contains("ghp") && !nonce.is_empty());
    let raw = STANDARD.decode(&ct).unwrap();
    assert!(
        !raw.windows(8)
            .any(|w| TOKEN.as_bytes().windows(8).any(|t| t == w))
    );
    // replace keeps one row, new value opens
    s.put_secret(&r, ws, "gh-token", "second-value-xyz")
        .await
        .unwrap();
    assert_eq!(
        s.open_secret(&r, ws, "gh-token")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "second-value-xyz"
    );
    let list = s.list_secrets(ws).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(
        !serde_json::to_string(&list)
            .unwrap()
            .contains("second-value")
    );
    // missing: None; another workspace sees nothing
    assert!(s.open_secret(&r, ws, "nope").await.unwrap().is_none());
    let other = s.ensure_workspace("globex").await.unwrap().id;
    assert!(
        s.open_secret(&r, other, "gh-token")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.list_secrets(other).await.unwrap().is_empty());
    // bad names and values
    for bad in ["", "../x", "-x", ".x", "a b", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                s.put_secret(&r, ws, bad, "v").await,
                Err(StoreError::Invalid(_))
            ),
            "{bad}"
        );
    }
    for bad in [String::new(), "a\0b".into(), "x".repeat(64 * 1024 + 1)] {
        assert!(matches!(
            s.put_secret(&r, ws, "ok", &bad).await,
            Err(StoreError::Vault(VaultError::BadValue))
        ));
    }
    assert!(
        s.put_secret(&r, ws, "ok", &"x".repeat(64 * 1024))
            .await
            .is_ok()
    );
    // delete
    s.delete_secret(ws, "ok").await.unwrap();
    assert!(matches!(
        s.delete_secret(ws, "ok").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_secret(other, "gh-token").await,
        Err(StoreError::NotFound(_))
    ));
}
both!(secret_round_trip, round_trip_and_names_only);

async fn rows_cannot_be_tampered_moved_or_relabelled(db: TestDb) {
    let s = &db.store;
    let r = ring(&[key(1, 1), key(2, 2)]);
    let a = s.ensure_workspace("a").await.unwrap().id;
    let b = s.ensure_workspace("b").await.unwrap().id;
    s.put_secret(&r, a, "deploy", TOKEN).await.unwrap();
    s.put_secret(&r, b, "deploy", "b-value-1234567")
        .await
        .unwrap();
    let (v, nonce, ct) = raw_row(&db, a, "deploy").await;
    assert_eq!(v, 2, "the newest key seals");

    // Move: a's sealed row copied over b's row (same name) does not open in b.
    sqlx::query("UPDATE secrets SET nonce = $1, ciphertext = $2 WHERE workspace_id = $3 AND name = 'deploy'")
        .bind(nonce.clone())
        .bind(ct.clone())
        .bind(b)
        .execute(s.pool())
        .await
        .unwrap();
    assert!(is_open_failure(s.open_secret(&r, b, "deploy").await));
    // Rename: the same row under another name in the same workspace does not open.
    sqlx::query("INSERT INTO secrets (workspace_id, name, key_version, nonce, ciphertext, created_at, updated_at) VALUES ($1, 'other', $2, $3, $4, 0, 0)")
        .bind(a)
        .bind(v)
        .bind(nonce.clone())
        .bind(ct.clone())
        .execute(s.pool())
        .await
        .unwrap();
    assert!(is_open_failure(s.open_secret(&r, a, "other").await));
    // Relabel: claiming key version 1 for a row sealed under 2 does not open.
    sqlx::query("UPDATE secrets SET key_version = 1 WHERE workspace_id = $1 AND name = 'deploy'")
        .bind(a)
        .execute(s.pool())
        .await
        .unwrap();
    assert!(is_open_failure(s.open_secret(&r, a, "deploy").await));
    sqlx::query("UPDATE secrets SET key_version = 2 WHERE workspace_id = $1 AND name = 'deploy'")
        .bind(a)
        .execute(s.pool())
        .await
        .unwrap();
    // the untouched row still opens (the attacks above are what failed)
    assert_eq!(
        s.open_secret(&r, a, "deploy")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        TOKEN
    );
    // Tamper: one flipped bit anywhere in the ciphertext or nonce.
    let mut raw = STANDARD.decode(&ct).unwrap();
    raw[3] ^= 1;
    sqlx::query("UPDATE secrets SET ciphertext = $1 WHERE workspace_id = $2 AND name = 'deploy'")
        .bind(STANDARD.encode(&raw))
        .bind(a)
        .execute(s.pool())
        .await
        .unwrap();
    assert!(is_open_failure(s.open_secret(&r, a, "deploy").await));
    let mut n = STANDARD.decode(&nonce).unwrap();
    n[0] ^= 0x80;
    sqlx::query("UPDATE secrets SET ciphertext = $1, nonce = $2 WHERE workspace_id = $3 AND name = 'deploy'")
        .bind(ct.clone())
        .bind(STANDARD.encode(&n))
        .bind(a)
        .execute(s.pool())
        .await
        .unwrap();
    assert!(is_open_failure(s.open_secret(&r, a, "deploy").await));
    // Garbage columns are an error, not a panic.
    sqlx::query(
        "UPDATE secrets SET nonce = 'not base64!' WHERE workspace_id = $1 AND name = 'deploy'",
    )
    .bind(a)
    .execute(s.pool())
    .await
    .unwrap();
    assert!(matches!(
        s.open_secret(&r, a, "deploy").await,
        Err(StoreError::Vault(VaultError::Malformed(_)))
    ));
    // Wrong key: a ring with a different key 2 cannot open b's genuine row.
    s.put_secret(&r, b, "fresh", "fresh-value-123")
        .await
        .unwrap();
    let wrong = ring(&[key(2, 99)]);
    assert!(is_open_failure(s.open_secret(&wrong, b, "fresh").await));
    // A ring without the row's version says so.
    let old_only = ring(&[key(1, 1)]);
    assert!(matches!(
        s.open_secret(&old_only, b, "fresh").await,
        Err(StoreError::Vault(VaultError::UnknownKeyVersion(2)))
    ));
    // Errors never carry the value.
    let e = s.open_secret(&wrong, b, "fresh").await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains("fresh-value"));
}
both!(secret_attacks, rows_cannot_be_tampered_moved_or_relabelled);

async fn rotation_reseals_online(db: TestDb) {
    let s = &db.store;
    let v1 = ring(&[key(1, 1)]);
    let ws = s.ensure_workspace("a").await.unwrap().id;
    let ws2 = s.ensure_workspace("b").await.unwrap().id;
    for i in 0..250 {
        s.put_secret(
            &v1,
            if i % 2 == 0 { ws } else { ws2 },
            &format!("s{i}"),
            &format!("value-{i}"),
        )
        .await
        .unwrap();
    }
    // step 1: every reader gets key 2 added; the ring opens both generations meanwhile
    let both_keys = ring(&[key(1, 1), key(2, 2)]);
    assert_eq!(
        s.open_secret(&both_keys, ws, "s0")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "value-0"
    );
    s.put_secret(&both_keys, ws, "new", "sealed-under-2")
        .await
        .unwrap();
    // step 2: rotate (pages of 200: more than one page here)
    let rep = s.rotate_secrets(&both_keys).await.unwrap();
    assert_eq!(
        (rep.current_version, rep.resealed, rep.skipped),
        (2, 250, 0)
    );
    assert_eq!(s.secret_key_versions().await.unwrap(), vec![(2, 251)]);
    // idempotent
    assert_eq!(s.rotate_secrets(&both_keys).await.unwrap().resealed, 0);
    // step 3: key 1 can go; everything opens under key 2 alone, and bindings still hold
    let v2 = ring(&[key(2, 2)]);
    for i in [0, 1, 249] {
        let w = if i % 2 == 0 { ws } else { ws2 };
        assert_eq!(
            s.open_secret(&v2, w, &format!("s{i}"))
                .await
                .unwrap()
                .unwrap()
                .expose(),
            format!("value-{i}")
        );
    }
    assert!(s.open_secret(&v2, ws2, "s0").await.unwrap().is_none());
    assert!(matches!(
        s.open_secret(&v1, ws, "s0").await,
        Err(StoreError::Vault(VaultError::UnknownKeyVersion(2)))
    ));
    // rotating with a ring that lacks a row's key stops and says so (nothing is lost)
    let v3_only = ring(&[key(3, 3)]);
    assert!(matches!(
        s.rotate_secrets(&v3_only).await,
        Err(StoreError::Vault(VaultError::UnknownKeyVersion(2)))
    ));
    assert_eq!(s.secret_key_versions().await.unwrap(), vec![(2, 251)]);
}
both!(secret_rotation, rotation_reseals_online);

async fn secret_in_use_cannot_be_deleted(db: TestDb) {
    let s = &db.store;
    let r = ring(&[key(1, 1)]);
    let ws = s.ensure_workspace("a").await.unwrap().id;
    s.put_secret(&r, ws, "tok", "token-value-123")
        .await
        .unwrap();
    let mut repo = NewRepo::new("app", "https://git.example.test/team/app.git");
    repo.credential = Some("tok".into());
    let created = s.create_repo(ws, &repo).await.unwrap();
    let e = s.delete_secret(ws, "tok").await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    s.delete_repo(ws, created.id).await.unwrap();
    s.delete_secret(ws, "tok").await.unwrap();
}
both!(secret_in_use, secret_in_use_cannot_be_deleted);
