//! Builds an image by hand until `landfall image build` exists:
//! `cargo run -p landfall-image --example build_image -- KERNEL MODULES_DIR AGENT OUT_DIR [EXTRA_MODULE…]`

use std::process::ExitCode;

use landfall_image::{build_image, ImageSpec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: build_image KERNEL MODULES_DIR AGENT OUT_DIR [EXTRA_MODULE...]");
        return ExitCode::from(2);
    }
    let spec = ImageSpec {
        kernel: args[0].clone().into(),
        modules_dir: args[1].clone().into(),
        agent: args[2].clone().into(),
        out_dir: args[3].clone().into(),
        extra_modules: args[4..].to_vec(),
        zstd_level: landfall_image::INITRD_ZSTD_LEVEL,
    };
    let started = std::time::Instant::now();
    match build_image(&spec) {
        Ok(report) => {
            print!("{report}");
            println!("built in {:.1?}", started.elapsed());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
