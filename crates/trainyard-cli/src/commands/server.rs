//! `trainyard server` (alias `serve-api`): the long-running process of a project — the REST
//! API and webhooks over HTTP, the embedded scheduler, and the control plane that carries
//! every run to its end — or, with `--openapi-out`, the API's OpenAPI document.

use std::future::Future;
use std::sync::Arc;

use trainyard::http::api;
use trainyard::http::{check_bind, ApiSecurity};
use trainyard::http::{CallbackAuth, OidcConfig, OidcVerifier, WebhookAuth};
use trainyard::{ApiTokenSource, ControlPlaneConfig, Platform, API_TOKEN_ENV};

use crate::cli::ServeApiArgs;
use crate::error::CliError;

fn openapi_json() -> Result<String, CliError> {
    api::openapi()
        .to_pretty_json()
        .map_err(|e| CliError::Failed(format!("OpenAPI document: {e}")))
}

pub async fn run(
    args: ServeApiArgs,
    platform: Option<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    if let Some(out) = &args.openapi_out {
        let doc = openapi_json()?;
        if out.as_os_str() == "-" {
            println!("{doc}");
        } else {
            std::fs::write(out, doc + "\n")
                .map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))?;
        }
        return Ok(());
    }
    let platform =
        platform.ok_or_else(|| CliError::Failed("server needs a project (--project)".into()))?;
    // Every address the host resolves to must be loopback, unless TLS termination is stated.
    let tls = args.tls_terminated_by_proxy || platform.config().server.tls_terminated_by_proxy;
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .map_err(|e| CliError::BadInput(format!("--host {}: {e}", args.host)))?
        .collect();
    for a in &addrs {
        check_bind(a.ip(), tls).map_err(|e| CliError::BadInput(e.to_string()))?;
    }
    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .map_err(|e| {
            CliError::Failed(format!("cannot listen on {}:{}: {e}", args.host, args.port))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let token = platform.api_token()?;
    let mut security = ApiSecurity::from_config(&token, &platform.config().server);
    for h in &args.allowed_hosts {
        security = security.allow_host(h);
    }
    if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
        // An IP literal cannot be rebound to another site's name.
        security = security.allow_host(&addr.ip().to_string());
    }
    let webhooks = webhook_auth(&args, &platform, &format!("http://{addr}"));
    let mounted = webhooks.is_some();
    // Cloud Scheduler fires schedules through the webhook when the platform has it as trigger;
    // otherwise this process's scheduler fires them.
    let control = (!args.api_only).then(|| {
        platform
            .control_plane(ControlPlaneConfig {
                scheduler: !platform.has_schedule_trigger(),
                ..ControlPlaneConfig::server()
            })
            .spawn()
    });
    let app = api::app(platform, webhooks, security);
    // One parseable line: test harnesses read the port from it.
    let shown = match token.source() {
        ApiTokenSource::Env => format!("the token in {API_TOKEN_ENV}"),
        ApiTokenSource::File(_) => token.value().to_string(),
    };
    println!(
        "serving the trainyard API on http://{addr} (OpenAPI: http://{addr}{}) \
         token: {shown} (send Authorization: Bearer <token>)",
        api::OPENAPI_PATH
    );
    if let ApiTokenSource::File(path) = token.source() {
        eprintln!("API token file: {}", path.display());
    }
    if !mounted {
        eprintln!("webhooks not mounted (set --webhook-secret or --scheduler-service-account)");
    }
    if let Some(control) = &control {
        eprintln!(
            "control plane running as {} (scheduler, runs, registrations, deploys)",
            control.owner()
        );
    }
    let served = api::serve(listener, app, shutdown)
        .await
        .map_err(|e| CliError::Failed(format!("server: {e}")));
    if let Some(control) = control {
        control.stop().await?;
    }
    served
}

fn webhook_auth(args: &ServeApiArgs, platform: &Platform, base: &str) -> Option<WebhookAuth> {
    if args.webhook_secret.is_none() && args.scheduler_service_account.is_none() {
        return None;
    }
    let audience = args
        .scheduler_audience
        .clone()
        .unwrap_or_else(|| base.to_string());
    // Without a service account no scheduler token matches: the route refuses every call.
    let account = args.scheduler_service_account.clone().unwrap_or_default();
    let scheduler = Arc::new(OidcVerifier::new(
        OidcConfig::google(audience, account),
        platform.clock().clone(),
    ));
    let callbacks = match &args.webhook_secret {
        Some(secret) if !secret.is_empty() => CallbackAuth::SharedSecret(secret.clone()),
        _ => CallbackAuth::Oidc(scheduler.clone()),
    };
    Some(WebhookAuth {
        scheduler,
        callbacks,
    })
}
