//! Lists the instances of the local daemon with their state, and runs `uname -a` in the first
//! running one.
//!
//! ```text
//! INCUS_DIR=/var/lib/incus cargo run -p incus-client --example list
//! ```

use incus_client::{Client, ExecArgs, ExecIo};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let (server, _) = client.server().await?;
    println!(
        "{} {} on {}",
        server.environment.server,
        server.environment.server_version,
        client.endpoint()
    );
    let instances = client.instances_full(None).await?;
    for i in &instances {
        println!(
            "{:20} {:8} {} snapshot(s)",
            i.instance.name,
            i.instance.status,
            i.snapshots.len()
        );
    }
    if let Some(running) = instances.iter().find(|i| i.instance.status == "Running") {
        let args = ExecArgs {
            command: vec!["uname".into(), "-a".into()],
            ..Default::default()
        };
        let io = ExecIo {
            stdin: Box::new(tokio::io::empty()),
            stdout: Box::new(tokio::io::stdout()),
            stderr: Box::new(tokio::io::stderr()),
            control: None,
        };
        let code = client.exec(&running.instance.name, &args, io).await?;
        println!("exit status {code}");
    }
    Ok(())
}
