//! OpenAPI operations of the webhook routes (served by [`crate::http::webhook_router`], whose
//! handlers are plain axum ones): built here from the stage list and the callback bodies'
//! fields so that the document describes every route `serve-api` mounts.

use trainyard_core::stages::StageName;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Required, ResponseBuilder};

use super::schema;

const BEARER: &str = "bearer";

fn stage() -> RefOr<Schema> {
    let names = StageName::ALL
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect::<Vec<_>>();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some("Pipeline stage"))
        .into()
}

fn map_of(t: Type, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(ObjectBuilder::new().schema_type(t)))
        .description(Some(description))
        .into()
}

fn body(
    required: Vec<(&str, RefOr<Schema>)>,
    optional: Vec<(&str, RefOr<Schema>)>,
) -> RefOr<Schema> {
    schema::object("Callback body", required, optional, &Default::default())
}

/// Adds the webhook operations (and their bearer security scheme) to `doc`.
pub fn document(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let id = |what: &str| {
        ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(what))
            .schema(Some(
                ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64),
                )),
            ))
            .build()
    };
    let op = |summary: &str, param: &str, body: Option<RefOr<Schema>>| {
        let mut b = OperationBuilder::new()
            .tag("webhooks")
            .summary(Some(summary))
            .parameter(id(param))
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .response("200", ResponseBuilder::new().description("Applied").build())
            .response(
                "400",
                ResponseBuilder::new().description("Bad input").build(),
            )
            .response(
                "401",
                ResponseBuilder::new()
                    .description("Missing or bad token")
                    .build(),
            )
            .response(
                "404",
                ResponseBuilder::new().description("Unknown id").build(),
            )
            .response(
                "409",
                ResponseBuilder::new()
                    .description("The run's status refuses the event")
                    .build(),
            );
        if let Some(s) = body {
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", Content::new(Some(s)))
                    .build(),
            ));
        }
        b.build()
    };
    let run = "Training run id";
    let paths = [
        (
            "/api/training/schedules/{id}/webhook/",
            op(
                "Cloud Scheduler fires a schedule (Google OIDC token of the scheduler's service account)",
                "Schedule id",
                None,
            ),
        ),
        (
            "/api/training-runs/{id}/webhook/stage-complete/",
            op(
                "A pipeline stage completed",
                run,
                Some(body(vec![("stage", stage())], vec![])),
            ),
        ),
        (
            "/api/training-runs/{id}/webhook/epoch-complete/",
            op(
                "A training epoch completed",
                run,
                Some(body(
                    vec![(
                        "epoch",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0))
                            .into(),
                    )],
                    vec![("metrics", map_of(Type::Number, "metric name -> value"))],
                )),
            ),
        ),
        (
            "/api/training-runs/{id}/webhook/failed/",
            op(
                "The pipeline failed",
                run,
                Some(body(
                    vec![("error", schema::string("What failed"))],
                    vec![("stage", stage())],
                )),
            ),
        ),
        (
            "/api/training-runs/{id}/webhook/completed/",
            op(
                "Training and evaluation finished",
                run,
                Some(body(
                    vec![
                        (
                            "training_metrics",
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .description(Some("The trainer's training_metrics.json"))
                                .into(),
                        ),
                        ("blessed", schema::boolean("The Evaluator's verdict")),
                    ],
                    vec![("artifacts", map_of(Type::String, "name -> URI"))],
                )),
            ),
        ),
    ];
    for (path, operation) in paths {
        doc.paths
            .add_path_operation(path, vec![HttpMethod::Post], operation);
    }
}
