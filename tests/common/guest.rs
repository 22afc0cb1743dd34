//! A real kernel for QEMU guests: Debian's cloud kernel and a busybox initramfs whose /init
//! brings up eth0 by DHCP and runs `caas discover` against a `caas api` on the host.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The address the guest reaches the API at (QEMU forwards it to 127.0.0.1).
pub const API_IN_GUEST: &str = "10.0.2.100";
/// Bound on one guest run; it takes about 10 s on an idle machine.
pub const BOOT_LIMIT: Duration = Duration::from_secs(300);

pub fn needs(what: &str) -> ! {
    panic!(
        "{what}: run scripts/install-test-deps.sh (or `make check`) to install the test packages"
    )
}

/// The newest installed kernel that has its modules (a cloud kernel if there is one).
pub fn kernel() -> (PathBuf, PathBuf) {
    let mut found = Vec::new();
    for entry in fs::read_dir("/boot").unwrap_or_else(|_| needs("no /boot")) {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(version) = name.strip_prefix("vmlinuz-") {
            let modules = Path::new("/lib/modules").join(version);
            if modules.join("modules.dep").is_file() {
                found.push((
                    version.contains("cloud"),
                    version.to_owned(),
                    Path::new("/boot").join(&name),
                    modules,
                ));
            }
        }
    }
    found.sort();
    match found.pop() {
        Some((_, _, vmlinuz, modules)) => (vmlinuz, modules),
        None => needs("no kernel with modules under /boot (package linux-image-cloud-amd64)"),
    }
}

/// The module files to load, dependencies first, for `wanted` (built-in ones are skipped).
pub fn module_load_order(modules: &Path, wanted: &[&str]) -> Vec<PathBuf> {
    let dep = fs::read_to_string(modules.join("modules.dep")).unwrap();
    let builtin = fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let name_of = |path: &str| {
        let file = path.rsplit('/').next().unwrap();
        file.split(".ko").next().unwrap().replace('-', "_")
    };
    let mut graph: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((module, deps)) = line.split_once(':') else {
            continue;
        };
        graph.insert(
            name_of(module),
            (
                module.to_owned(),
                deps.split_whitespace().map(name_of).collect(),
            ),
        );
    }
    fn visit(name: &str, graph: &BTreeMap<String, (String, Vec<String>)>, order: &mut Vec<String>) {
        if order.iter().any(|n| n == name) {
            return;
        }
        let (path, deps) = &graph[name];
        for dep in deps {
            visit(dep, graph, order);
        }
        order.push(path.clone());
    }
    let mut order = Vec::new();
    for name in wanted {
        if graph.contains_key(*name) {
            visit(name, &graph, &mut order);
        } else {
            assert!(
                builtin.lines().any(|l| name_of(l) == *name),
                "module {name} is neither in modules.dep nor built in"
            );
        }
    }
    order.into_iter().map(|p| modules.join(p)).collect()
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {out:?}");
}

/// A busybox initramfs with caas (and the glibc libraries it links), the NIC modules and an
/// /init that brings up eth0 by DHCP and runs `caas discover`.
pub fn initramfs(dir: &Path, modules: &[PathBuf], port: u16) -> PathBuf {
    let root = dir.join("root");
    for sub in ["bin", "proc", "sys", "dev", "tmp", "etc", "modules"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        needs("no /bin/busybox (package busybox-static)");
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();

    // caas without its debug sections (a smaller initramfs), and what the loader needs.
    let caas = env!("CARGO_BIN_EXE_caas");
    run(Command::new("strip")
        .arg("-o")
        .arg(root.join("caas"))
        .arg(caas));
    let ldd = Command::new("ldd").arg(caas).output().unwrap();
    let ldd = String::from_utf8(ldd.stdout).unwrap();
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let target = root.join(lib.trim_start_matches('/'));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(lib, &target).unwrap_or_else(|e| panic!("copying {lib}: {e}"));
    }

    let mut names = Vec::new();
    for module in modules {
        let file = module.file_name().unwrap().to_string_lossy().into_owned();
        let name = file.split(".ko").next().unwrap().to_owned();
        let target = root.join("modules").join(format!("{name}.ko"));
        if file.ends_with(".ko") {
            fs::copy(module, &target).unwrap();
        } else {
            // Compressed modules (newer kernels): busybox insmod wants them plain.
            let tool = if file.ends_with(".xz") { "xz" } else { "zstd" };
            let out = Command::new(tool).arg("-dc").arg(module).output().unwrap();
            assert!(out.status.success(), "{tool} -dc {}", module.display());
            fs::write(&target, out.stdout).unwrap();
        }
        names.push(name);
    }

    let udhcpc = "#!/bin/busybox sh\n\
        case \"$1\" in bound|renew)\n\
          ip addr add \"$ip/$mask\" dev \"$interface\"\n\
          [ -n \"$router\" ] && ip route add default via \"$router\";;\n\
        esac\n\
        exit 0\n";
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs dev /dev\n\
         for m in {modules}; do insmod /modules/$m.ko || echo \"insmod $m failed\"; done\n\
         ip link set lo up\n\
         for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 1; done\n\
         ip link set eth0 up\n\
         udhcpc -i eth0 -s /udhcpc.sh -q -n -t 20 -T 2\n\
         hostname caas-guest\n\
         echo CAAS-DISCOVER-START\n\
         /caas discover --api http://{API_IN_GUEST}:{port} --retries 5 --retry-wait 1s\n\
         echo \"CAAS-DISCOVER-EXIT $?\"\n\
         reboot -f\n",
        modules = names.join(" ")
    );
    for (name, text) in [("init", init.as_str()), ("udhcpc.sh", udhcpc)] {
        fs::write(root.join(name), text).unwrap();
        run(Command::new("chmod").arg("755").arg(root.join(name)));
    }

    // Uncompressed newc cpio, which the kernel unpacks as its initramfs.
    let files = Command::new("find")
        .arg(".")
        .current_dir(&root)
        .output()
        .unwrap();
    let image = dir.join("initramfs.cpio");
    let mut cpio = Command::new(busybox)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&image).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut cpio.stdin.take().unwrap(), &files.stdout).unwrap();
    assert!(cpio.wait().unwrap().success());
    image
}

pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Waits for a guest to power off (its /init ends with `reboot -f`, QEMU runs with
/// `-no-reboot`); kills it after [`BOOT_LIMIT`]. `None` when it had to be killed.
pub fn wait_for_guest(qemu: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = qemu.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > BOOT_LIMIT {
            let _ = qemu.kill();
            let _ = qemu.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
