//! The unit supervisor as a standalone program (`xtreem-supervisor DIR`),
//! for tests and hosts without `xosd supervise`.

fn main() {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(dir), None) => xtreem_exec::supervise(std::path::Path::new(&dir)),
        _ => {
            eprintln!("usage: xtreem-supervisor UNIT_DIR");
            std::process::exit(2)
        }
    }
}
