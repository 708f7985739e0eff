//! `octopus`: not implemented yet; it says so and fails rather than pretending to work.

fn main() -> std::process::ExitCode {
    eprintln!("octopus: not implemented yet");
    std::process::ExitCode::from(2)
}
