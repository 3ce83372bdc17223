//! The `ads-stats` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() {
    let cli = ads_stats::cli::Cli::parse();
    std::process::exit(ads_stats::cli::run(cli));
}
