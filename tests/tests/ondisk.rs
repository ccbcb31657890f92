//! On-disk inverted lists through the whole workflow: shards built apart and merged into
//! one data file search exactly as the index built in memory from all vectors; the merged
//! index saves (Faiss's `ilod` record), reopens writable (adds go to the data file) or
//! read-only (adds are refused), and faiss-cpu opens it and finds the same neighbours.

use fathom_index::{Index, IndexIvfFlat, MetricType, index_factory};
use fathom_invlists::{InvertedLists, OnDiskInvertedLists};
use fathom_io::faiss::{clone_index, read_index, read_index_mmap, write_index};
use fathom_tests::harness::{Outcome, PASSED, skipped};

const D: usize = 16;

fn data(n: usize, seed: u64) -> Vec<f32> {
    fathom_tests::uniform_data(n, D, seed)
}

fn ivf(index: &dyn Index) -> &IndexIvfFlat {
    index.downcast_ref::<IndexIvfFlat>().unwrap()
}

fn shards_merged_on_disk_search_as_one_index_built_in_memory() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let x = data(3000, 7);
    let q = data(40, 99);
    let mut trained = index_factory(D, "IVF16,Flat", MetricType::L2).unwrap();
    trained.train(&x).unwrap();
    trained.set_param("nprobe", 4.0).unwrap();

    let mut whole = clone_index(&*trained).unwrap();
    whole.add(&x).unwrap();

    let shards: Vec<Box<dyn Index>> = x
        .chunks(1000 * D)
        .enumerate()
        .map(|(s, part)| {
            let mut shard = clone_index(&*trained).unwrap();
            shard.add(part).unwrap();
            let path = dir.path().join(format!("shard{s}.faiss"));
            write_index(&*shard, &path).unwrap();
            read_index(&path).unwrap()
        })
        .collect();
    let lists: Vec<&dyn InvertedLists> = shards.iter().map(|s| ivf(&**s).invlists()).collect();
    let data_path = dir.path().join("merged.ivfdata");
    let mut ondisk = OnDiskInvertedLists::create(&data_path, 16, 4 * D).unwrap();
    assert_eq!(ondisk.merge_from_multiple(&lists, true).unwrap(), 3000);
    assert!(
        ondisk.merge_from_multiple(&lists, true).is_err(),
        "only into empty lists"
    );

    let mut merged = clone_index(&*trained).unwrap();
    let m = merged.downcast_mut::<IndexIvfFlat>().unwrap();
    m.replace_invlists(Box::new(ondisk)).unwrap();
    assert_eq!(merged.ntotal(), 3000);
    for l in 0..16 {
        assert_eq!(
            ivf(&*merged).invlists().ids(l),
            ivf(&*whole).invlists().ids(l)
        );
        assert_eq!(
            ivf(&*merged).invlists().codes(l),
            ivf(&*whole).invlists().codes(l)
        );
    }
    let want = whole.search(&q, 10).unwrap();
    assert_eq!(merged.search(&q, 10).unwrap(), want);

    // Saved and reopened writable: the data stays in the data file, adds go there.
    let path = dir.path().join("merged.faiss");
    write_index(&*merged, &path).unwrap();
    drop(merged);
    let size_before = std::fs::metadata(&data_path).unwrap().len();
    let mut reopened = read_index(&path).unwrap();
    assert_eq!(reopened.search(&q, 10).unwrap(), want);
    let extra = data(500, 3);
    reopened.add(&extra).unwrap();
    whole.add(&extra).unwrap();
    assert_eq!(
        reopened.search(&q, 10).unwrap(),
        whole.search(&q, 10).unwrap()
    );
    assert!(std::fs::metadata(&data_path).unwrap().len() >= size_before);
    write_index(&*reopened, &path).unwrap();
    drop(reopened);

    // Read-only: searches, refuses changes, leaves the data file as it was.
    let bytes = std::fs::read(&data_path).unwrap();
    let mut ro = read_index_mmap(&path).unwrap();
    assert_eq!(ro.ntotal(), 3500);
    assert_eq!(ro.search(&q, 10).unwrap(), whole.search(&q, 10).unwrap());
    assert!(
        ro.add(&extra[..D])
            .unwrap_err()
            .to_string()
            .contains("read-only")
    );
    assert_eq!(std::fs::read(&data_path).unwrap(), bytes);

    // faiss-cpu opens the merged index and finds the same neighbours.
    let python = match fathom_tests::faiss_python() {
        Ok(p) => p,
        Err(why) => return skipped(format!("its faiss-cpu half did not run: {why}")),
    };
    let faiss = &fathom_tests::faiss_search(&python, dir.path(), &q, D, &[("merged", 10)])[0];
    assert_eq!(faiss.meta, format!("{D} 3500 1"));
    let res = whole.search(&q, 10).unwrap();
    fathom_tests::assert_same_results(
        "on-disk",
        10,
        &res.distances,
        &res.labels,
        &faiss.distances,
        &faiss.labels,
    );
    PASSED
}

/// Paths that are not regular files are refused by name instead of read: a FIFO where an
/// index's on-disk data should be (the name comes from the index file) would block the
/// open forever, and `/dev/zero` as an index file would read until memory ran out.
fn special_files_are_refused_not_waited_on() -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let x = data(400, 5);
    let mut index = index_factory(D, "IVF4,Flat", MetricType::L2).unwrap();
    index.train(&x).unwrap();
    let data_path = dir.path().join("lists.ivfdata");
    let lists = OnDiskInvertedLists::create(&data_path, 4, 4 * D).unwrap();
    let ivf = index.downcast_mut::<IndexIvfFlat>().unwrap();
    ivf.replace_invlists(Box::new(lists)).unwrap();
    index.add(&x).unwrap();
    let path = dir.path().join("index.faiss");
    write_index(&*index, &path).unwrap();
    drop(index);
    std::fs::remove_file(&data_path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&data_path)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        return skipped("mkfifo is not available to make the FIFO");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let opened = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_index(&opened).map(|_| ()).map_err(|e| e.to_string()));
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("read_index waited on the FIFO")
        .unwrap_err();
    assert!(e.contains("is a FIFO, not a regular file"), "{e}");
    let zero = dir.path().join("zero.faiss");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for e in [
        read_index(&zero).map(|_| ()).unwrap_err(),
        read_index_mmap(&zero).map(|_| ()).unwrap_err(),
        fathom_io::faiss::read_index_file_records(&zero)
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(e.to_string().contains("is a character device"), "{e}");
    }
    PASSED
}

fathom_tests::harness::main!(
    shards_merged_on_disk_search_as_one_index_built_in_memory,
    special_files_are_refused_not_waited_on,
);
