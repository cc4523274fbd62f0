//! `skiff acl`: grant, revoke and list users' permissions on topics and
//! groups. Human output is aligned columns; `--json` is one object a line.

use std::io::Write;

use anyhow::Result;
use serde_json::json;
use skiff_client::Client;

use crate::args::AclCommand;
use crate::output;

/// Runs `skiff acl ...`.
pub async fn run(client: &Client, command: AclCommand) -> Result<()> {
    let security = client.security();
    let mut out = output::stdout();
    match command {
        AclCommand::Grant(args) => {
            let resource = args.resource();
            security
                .grant(&args.user, resource.clone(), args.ops)
                .await?;
            eprintln!("granted {} on {resource} to {}", args.ops, args.user);
        }
        AclCommand::Revoke(args) => {
            let resource = args.resource();
            security
                .revoke(&args.user, resource.clone(), args.ops)
                .await?;
            eprintln!("revoked {} on {resource} from {}", args.ops, args.user);
        }
        AclCommand::List { user, json } => {
            let acls = security.list_acls(user.as_deref()).await?;
            if json {
                for a in &acls {
                    let line = json!({
                        "user": a.user,
                        "kind": a.resource.kind.name(),
                        "name": a.resource.name,
                        "prefix": a.resource.prefix,
                        "operations": a.operations.to_string().split(',').collect::<Vec<_>>(),
                    });
                    writeln!(out, "{line}")?;
                }
            } else {
                writeln!(
                    out,
                    "{:<24} {:<6} {:<8} {:<32} OPERATIONS",
                    "USER", "KIND", "MATCH", "NAME"
                )?;
                for a in &acls {
                    writeln!(
                        out,
                        "{:<24} {:<6} {:<8} {:<32} {}",
                        a.user,
                        a.resource.kind.name(),
                        if a.resource.prefix { "prefix" } else { "exact" },
                        a.resource.name,
                        a.operations
                    )?;
                }
            }
        }
    }
    out.finish()
}
