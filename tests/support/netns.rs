//! A network namespace of the test's own: `lo` plus a veth pair standing for a container's network
//! card (`dummy` needs a kernel module containers often lack), both ends inside. Deleted when
//! dropped, also when the test fails. Needs root, as `make test` runs.

use std::process::{Command, Output};

pub struct Netns {
    pub name: String,
    /// The namespace's second address, on `sb0`.
    pub address: String,
}

impl Netns {
    /// `address` goes on `sb0` as a /24.
    pub fn create(tag: &str, address: &str) -> Netns {
        let name = format!("sb{tag}-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let netns = Netns { name, address: address.to_string() };
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "add", "sb0", "type", "veth", "peer", "name", "sb1"],
            vec!["addr", "add", &format!("{address}/24"), "dev", "sb0"],
            vec!["link", "set", "sb0", "up"],
            vec!["link", "set", "sb1", "up"],
        ] {
            run(Command::new("ip").args(["-n", &netns.name]).args(&args));
        }
        netns
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// `ip ARGS` inside the namespace; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `work` on a thread that has entered the namespace, so plain sockets of the test reach
    /// the namespace's loopback.
    pub fn within<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a file descriptor we own, for this thread only (CLONE_NEWNET).
            let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            work()
        })
        .join()
        .expect("the thread inside the namespace panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run ip");
    assert!(output.status.success(), "{command:?}: {}", super::describe(&output));
    output
}
