//! `cargo run -p xtreem-sim --release --example bench -- site 1000`
//! `cargo run -p xtreem-sim --release --example bench -- federation 100 1000`
use xtreem_sim::{FederationScenario, SiteScenario, run_federation_with, run_site};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("federation") => {
            let s = FederationScenario {
                sites: num(1, 100) as u32,
                nodes_per_site: num(2, 1000) as u32,
                queries: num(3, 1000) as u32,
                ..FederationScenario::default()
            };
            println!("{:#?}", run_federation_with(&s, num(4, 1) as u32));
        }
        _ => {
            let s = SiteScenario {
                nodes: num(1, 1000) as u32,
                seed: num(2, 1),
                steady_secs: num(3, 10),
                ..SiteScenario::default()
            };
            println!("{:#?}", run_site(&s));
        }
    }
}
