//! `throttle-proxy UPSTREAM BYTES_PER_SEC`: forwards a free loopback port to
//! UPSTREAM (HOST:PORT), each direction of each connection limited to
//! BYTES_PER_SEC, with the tests' [`CutProxy`]; prints the port it listens
//! on, then runs until killed. The benchmarks' slow laptop link.

use landfall_tests::proxy::CutProxy;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(upstream), Some(rate)) = (
        args.first().and_then(|a| a.parse().ok()),
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: throttle-proxy UPSTREAM_HOST:PORT BYTES_PER_SEC");
        std::process::exit(2);
    };
    let proxy = match CutProxy::start(upstream) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("throttle-proxy: {e}");
            std::process::exit(1);
        }
    };
    proxy.set_rate(rate);
    println!("{}", proxy.addr().port());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
