use clap::Parser;

fn main() -> std::process::ExitCode {
    wxpush::main(wxpush::cli::Cli::parse())
}
