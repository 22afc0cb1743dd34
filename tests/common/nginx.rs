//! A real nginx (Debian's `nginx-light`, see scripts/install-test-deps.sh) serving a
//! configuration `caas publish static` wrote: a single foreground process on 127.0.0.1 with a
//! private prefix, stopped when dropped.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::matchbox::{http_get, wait_listening};

pub struct Nginx {
    child: Child,
    port: u16,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    /// Serves `conf` (an http-level include, whose `listen` is 127.0.0.1:`port`).
    pub fn start(conf: &Path, port: u16) -> Nginx {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        let temp = p.join("temp");
        fs::create_dir_all(&temp).unwrap();
        let main = format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {pid};\nerror_log {log} warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {t};\n    proxy_temp_path {t};\n\
                 fastcgi_temp_path {t};\n    uwsgi_temp_path {t};\n    scgi_temp_path {t};\n\
                 include {conf};\n}}\n",
            pid = p.join("nginx.pid").display(),
            log = p.join("error.log").display(),
            t = temp.display(),
            conf = conf.display(),
        );
        fs::write(p.join("nginx.conf"), main).unwrap();
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| Path::new(path).is_file())
            .expect("nginx is not installed: run scripts/install-test-deps.sh");
        let child = Command::new(binary)
            .arg("-p")
            .arg(p)
            .arg("-e")
            .arg(p.join("error.log"))
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting nginx");
        wait_listening(port, "nginx");
        Nginx {
            child,
            port,
            _prefix: prefix,
        }
    }

    pub fn get(&self, path_and_query: &str) -> (u16, Vec<u8>) {
        http_get(self.port, path_and_query)
    }

    /// What nginx logged (errors and warnings).
    pub fn log(&self) -> String {
        fs::read_to_string(self._prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
