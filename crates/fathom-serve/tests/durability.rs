//! Durability and consistency: restarts replay what came after the last snapshot, damaged
//! snapshots and databases fall back to good copies (and say so), readers never see an id
//! without its metadata while writers and retraining run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fathom_index::Index;
use fathom_serve::ServeConfig;
use fathom_serve::api::App;
use fathom_serve::collection::SearchOptions;
use fathom_serve::store::CollectionDef;

fn open(dir: &std::path::Path) -> Arc<App> {
    fathom_serve::server::open(ServeConfig::new(dir)).unwrap()
}

fn vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    fathom_tests::uniform_data(n, d, seed)
}

fn meta(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"tag":"{tag}","i":{i}}}"#))
        .collect()
}

fn create(app: &App, name: &str, index: &str) {
    app.service
        .create(CollectionDef {
            name: name.into(),
            dim: 8,
            metric: fathom_serve::store::Metric::L2,
            index: index.into(),
        })
        .unwrap();
}

fn counts(app: &App, name: &str) -> (usize, usize, String) {
    let c = app.service.get(name).unwrap();
    let live = c.live.read().unwrap();
    (live.index.ntotal(), live.items.len(), live.source.clone())
}

/// The nearest neighbour of each of the first `n` stored vectors is itself.
fn finds_itself(app: &App, name: &str, x: &[f32], ids: &[i64]) {
    let c = app.service.get(name).unwrap();
    let ivf = c.live.read().unwrap().index.param("nprobe").is_some();
    let opts = SearchOptions {
        top_k: 1,
        nprobe: ivf.then_some(64),
        ..Default::default()
    };
    let hits = c.search(x, &opts).unwrap();
    for (h, &id) in hits.iter().zip(ids) {
        assert_eq!(h[0].id, id, "{name}");
    }
}

#[test]
fn restart_replays_adds_and_deletes_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let first = vectors(1000, 8, 1);
    let later = vectors(300, 8, 2);
    {
        let app = open(dir.path());
        create(&app, "flat", "Flat");
        create(&app, "ivf", "IVF16,Flat");
        create(&app, "hnsw", "HNSW8");
        for name in ["flat", "ivf", "hnsw"] {
            let c = app.service.get(name).unwrap();
            app.service.add(&c, &first, meta(1000, "a")).unwrap();
        }
        app.service.snapshot().unwrap();
        for name in ["flat", "ivf", "hnsw"] {
            let c = app.service.get(name).unwrap();
            app.service.add(&c, &later, meta(300, "b")).unwrap();
            app.service.delete(&c, &[0, 1, 1005]).unwrap();
        }
        // No final snapshot: as if the process died here.
    }
    let app = open(dir.path());
    for name in ["flat", "ivf", "hnsw"] {
        let (ntotal, items, source) = counts(&app, name);
        assert_eq!(items, 1297, "{name}");
        if name != "hnsw" {
            assert_eq!(
                ntotal, 1297,
                "{name}: deletes since the snapshot are removed"
            );
        }
        assert!(source.contains("299 items replayed"), "{name}: {source}"); // 1005 was deleted
        finds_itself(
            &app,
            name,
            &later[8 * 10..8 * 20],
            &(1010..1020).collect::<Vec<_>>(),
        );
        let c = app.service.get(name).unwrap();
        let opts = SearchOptions {
            top_k: 1,
            nprobe: (name == "ivf").then_some(64),
            ..Default::default()
        };
        let hit = &c.search(&first[..8], &opts).unwrap()[0];
        assert_ne!(hit[0].id, 0, "{name}: id 0 was deleted");
    }
}

#[test]
fn damaged_snapshots_and_database_fall_back_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let x = vectors(500, 8, 3);
    {
        let app = open(dir.path());
        create(&app, "c", "IVF8,SQ8");
        let c = app.service.get("c").unwrap();
        app.service.add(&c, &x[..400 * 8], meta(400, "a")).unwrap();
        app.service.snapshot().unwrap();
        app.service.add(&c, &x[400 * 8..], meta(100, "b")).unwrap();
        app.service.snapshot().unwrap();
    }
    let snaps = fathom_serve::snapshot::list(&dir.path().join("snapshots"));
    assert_eq!(snaps.len(), 2);
    // Damage the newest snapshot's index: one flipped byte.
    let newest = snaps[0].1.join("c.faiss");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    {
        let app = open(dir.path());
        let (ntotal, items, source) = counts(&app, "c");
        assert_eq!((ntotal, items), (500, 500));
        assert!(
            source.contains(&format!("snapshot {}", snaps[1].0)),
            "{source}"
        );
        assert!(source.contains("100 items replayed"), "{source}");
        assert!(
            app.service.startup.iter().any(|l| l.contains("damaged")),
            "{:?}",
            app.service.startup
        );
        let h = app.service.health();
        assert_eq!(h["collections"][0]["loaded_from"], source.as_str());
        finds_itself(&app, "c", &x[..8 * 20], &(0..20).collect::<Vec<_>>());
    }
    // Damage the database itself: it is restored from the newest good snapshot.
    for f in ["items.sqlite-wal", "items.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    std::fs::write(
        dir.path().join("items.sqlite"),
        b"this is not a database at all, sorry",
    )
    .unwrap();
    let app = open(dir.path());
    assert!(
        app.service
            .startup
            .iter()
            .any(|l| l.contains("restored from snapshot")),
        "{:?}",
        app.service.startup
    );
    let (_, items, _) = counts(&app, "c");
    assert_eq!(items, 400, "the older good snapshot held 400 items");
    assert!(dir.path().join("items.sqlite.damaged").exists());
}

#[test]
fn readers_never_see_an_id_without_metadata_while_writers_and_retraining_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    create(&app, "live", "IVF16,Flat");
    let c = app.service.get("live").unwrap();
    app.service
        .add(&c, &vectors(1000, 8, 4), meta(1000, "seed"))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (app, stop) = (app.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = app.service.get("live").unwrap();
                let q = vectors(16, 8, 100 + r);
                let opts = SearchOptions {
                    top_k: 10,
                    nprobe: Some(4),
                    ..Default::default()
                };
                let mut searches = 0;
                while !stop.load(Ordering::Relaxed) {
                    for row in c.search(&q, &opts).unwrap() {
                        for h in row {
                            assert!(
                                h.metadata["tag"].is_string(),
                                "id {} without metadata",
                                h.id
                            );
                        }
                    }
                    searches += 1;
                }
                searches
            })
        })
        .collect();
    let mut added = 1000;
    for round in 0..40u64 {
        app.service
            .add(&c, &vectors(25, 8, 200 + round), meta(25, "w"))
            .unwrap();
        added += 25;
        let victim = (round * 37 % 1000) as i64;
        added -= app.service.delete(&c, &[victim]).unwrap().len();
        if round % 10 == 5 {
            app.service.retrain(&c).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let (ntotal, items, _) = counts(&app, "live");
    assert_eq!((ntotal, items), (added, added));
}
