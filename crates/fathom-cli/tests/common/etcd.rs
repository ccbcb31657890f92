//! A 3-member etcd cluster on 127.0.0.1 for the cluster tests: Debian's `etcd-server`
//! (installed with apt on first use when the tests run as root and it is missing), data
//! in a temporary directory (on /dev/shm where there is one, so fsyncs are cheap),
//! every member killed when the cluster drops.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `etcd` binary: on PATH, or installed now (`apt-get install etcd-server`, as
/// root). `Err` says why there is none.
pub fn etcd_binary() -> Result<PathBuf, String> {
    fathom_tests::apt_binary("etcd", &["etcd-server"])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running etcd cluster; members SIGKILLed on drop.
pub struct EtcdCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    client_ports: Vec<u16>,
    peer_ports: Vec<u16>,
    members: Vec<Option<Child>>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in self.members.iter_mut().flatten() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

impl EtcdCluster {
    /// Starts `n` members and waits (at most 60 s) until each answers `/health`.
    pub fn start(n: usize) -> Result<Self, String> {
        let bin = etcd_binary()?;
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let mut c = EtcdCluster {
            bin,
            dir,
            client_ports: (0..n).map(|_| free_port()).collect(),
            peer_ports: (0..n).map(|_| free_port()).collect(),
            members: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.start_member(i);
        }
        for i in 0..n {
            c.wait_healthy(i, Duration::from_secs(60))?;
        }
        Ok(c)
    }

    /// Starts member `i` (again, after [`EtcdCluster::kill`], from its data directory).
    pub fn start_member(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .peer_ports
            .iter()
            .enumerate()
            .map(|(j, p)| format!("e{j}=http://127.0.0.1:{p}"))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.client_ports[i]);
        let peer = format!("http://127.0.0.1:{}", self.peer_ports[i]);
        let log = std::fs::File::create(self.dir.path().join(format!("e{i}.log"))).unwrap();
        let child = Command::new(&self.bin)
            .args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("e{i}")))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "fathom-test"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i] = Some(child);
    }

    fn wait_healthy(&self, i: usize, limit: Duration) -> Result<(), String> {
        let t = Instant::now();
        let addr = format!("127.0.0.1:{}", self.client_ports[i]);
        while t.elapsed() < limit {
            if let Ok((200, v)) = super::http(&addr, "GET", "/health", "")
                && v["health"] == "true"
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "etcd member {i} not healthy within {limit:?}: {}",
            self.log(i)
        ))
    }

    /// Member `i`'s log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("e{i}.log"))).unwrap_or_default()
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut m) = self.members[i].take() {
            let _ = m.kill();
            let _ = m.wait();
        }
    }

    /// The client endpoints, `127.0.0.1:port,…`.
    pub fn endpoints(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
